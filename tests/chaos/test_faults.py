"""Faults against the running stack, each in the middle of real traffic, then the same checks.

Every fault posts new customers' mail (Postmark inbound JSON) and SMS (signed Twilio forms)
to both ASGI processes and has the agent answer earlier conversations through the REST API,
so workers deliver replies to the fake providers while the fault strikes. The checks after
it (tests/chaos/checks.py) count each message by its provider's id and each reply by our id.
"""
from __future__ import annotations

import json
import random
import re
import signal
import time
from collections import Counter

import pytest

from tests.chaos.checks import check_after_fault, conversations_of, provider_sends, wait_in_timeline
from tests.chaos.traffic import Tally, emails, post_all, run_in_background, texts
from tests.fakes.postmark import Reply as PostmarkReply
from tests.fakes.twilio import Reply as TwilioReply
from tests.integration.conftest import wait_until

pytestmark = pytest.mark.chaos

# How long Redis stays down in each restart: none, as a supervisor restarting it at once; the
# second restart then comes right after the workers reconnected from the first.
REDIS_DOWN = 0.0
DELIVERIES = re.compile(r"Task channels_in\.outbound_deliver\[([0-9a-f-]+)\] received")
DELIVERED = re.compile(r"Task channels_in\.outbound_deliver\[([0-9a-f-]+)\] succeeded")


def delivering(worker) -> bool:
    """Whether the worker holds a delivery it has not finished (in its pool: prefetch is 1)."""
    log = worker.log()
    return bool(set(DELIVERIES.findall(log)) - set(DELIVERED.findall(log)))


def opened_conversations(stack, desk, tag: str, count: int, tally: Tally) -> list[int]:
    """Conversations (half email, half SMS) for the agent to answer during the fault."""
    seed = emails(count // 2, f"{tag}-seed") + texts(count - count // 2, f"{tag}-seed", desk.sms_channel_uuid)
    post_all(seed, stack.webs, tally)
    wait_in_timeline(stack, seed)
    return conversations_of(stack, seed)


def mixed(tag: str, desk, count: int) -> list:
    load = emails(count // 2, tag) + texts(count - count // 2, tag, desk.sms_channel_uuid)
    random.shuffle(load)
    return load


@pytest.fixture(autouse=True)
def two_workers(stack):
    """Each fault starts with two live workers, whatever the previous one did to them."""
    for slot, worker in list(stack.workers.items()):
        if not worker.alive():
            stack.start_worker(slot)


def finish(stack, report_line, name: str, *, inbound: list, replies: list[int], extra: str, started: float,
           killed: tuple[str, ...] = ()) -> None:
    report = check_after_fault(stack, name, inbound=inbound, replies=replies, extra=extra, started=started, killed=killed)
    report_line(report.line())
    problems = report.problems()
    assert not problems, "\n".join(problems) + "\n" + stack.logs(1500)


def test_sigkill_worker(stack, desk, report_line):
    """SIGKILL a worker's main process (its pool dies with it) while it delivers and processes."""
    started = time.monotonic()
    tally = Tally()
    conversations = opened_conversations(stack, desk, "kill", 40, tally)
    load = mixed("kill", desk, 120)
    victim = stack.workers["w1"]
    deliveries_before = len(DELIVERIES.findall(victim.log()))
    # Real provider APIs answer in 100-300 ms: most of a delivery is spent waiting for them.
    stack.postmark.queue(*[PostmarkReply(delay=0.1)] * 100)
    stack.twilio.queue(*[TwilioReply(delay=0.1)] * 100)
    sends_before = sum(provider_sends(stack).values())

    join_inbound = run_in_background(lambda: post_all(load, stack.webs, tally, threads=4, pace=0.02))
    join_replies = run_in_background(lambda: desk.agent.reply_all(stack.webs, conversations, tag="kill", threads=2, pace=0.04))
    # Strike once the victim is in the middle of it: delivering replies while the other worker does too.
    wait_until(lambda: len(DELIVERIES.findall(victim.log())) >= deliveries_before + 3 and delivering(victim)
               and sum(provider_sends(stack).values()) >= sends_before + 8, timeout=60, what="the worker to be delivering", interval=0.01)
    victim.signal_main(signal.SIGKILL)
    victim.popen.wait(10)
    join_inbound()
    replies = join_replies()
    stack.postmark.replies.clear()
    stack.twilio.replies.clear()

    finish(stack, report_line, "sigkill-worker", inbound=load, replies=replies, started=started, killed=("w1",),
           extra=f"worker w1 killed with {len(DELIVERIES.findall(victim.log())) - deliveries_before} deliveries received, "
                 f"one unfinished; webhooks {tally.summary()}")


def test_redis_restart(stack, desk, report_line):
    """Redis dies (SIGKILL) and comes back on its port and AOF file mid-run; later it restarts cleanly (SIGTERM).

    Each time it stays down REDIS_DOWN s: webhooks still get 200 (the event is stored; its
    enqueue fails fast and the sweeper enqueues it), and every worker must reconnect.
    """
    started = time.monotonic()
    tally = Tally()
    conversations = opened_conversations(stack, desk, "redis", 40, tally)
    load = mixed("redis", desk, 120)
    posts_before = tally.posts

    join_inbound = run_in_background(lambda: post_all(load, stack.webs, tally, threads=4, pace=0.02))
    join_replies = run_in_background(lambda: desk.agent.reply_all(stack.webs, conversations, tag="redis", threads=2, pace=0.05))
    wait_until(lambda: tally.posts >= posts_before + 35, timeout=60, what="a third of the webhooks", interval=0.02)
    stack.redis.restart(signal.SIGKILL, down_for=REDIS_DOWN)
    wait_until(lambda: tally.posts >= posts_before + 80, timeout=60, what="two thirds of the webhooks", interval=0.02)
    stack.redis.restart(signal.SIGTERM, down_for=REDIS_DOWN)
    join_inbound()
    replies = join_replies()
    stack.wait_healthy()

    finish(stack, report_line, "redis-restart", inbound=load, replies=replies, started=started,
           extra=f"redis restarted {stack.redis.restarts}x (SIGKILL, SIGTERM; down {REDIS_DOWN:.1f} s each); webhooks {tally.summary()}")


def test_postgres_restart(stack, desk, report_line):
    """pg_ctl restart -m fast while replies are being delivered and webhooks keep coming."""
    started = time.monotonic()
    tally = Tally()
    conversations = opened_conversations(stack, desk, "pg", 40, tally)
    load = mixed("pg", desk, 120)
    posts_before = tally.posts
    sends_before = sum(provider_sends(stack).values())

    # The replies are written before the restart (an agent's client does not retry a POST):
    # their delivery is what the restart interrupts.
    replies = desk.agent.reply_all(stack.webs, conversations, tag="pg", threads=4)
    join_inbound = run_in_background(lambda: post_all(load, stack.webs, tally, threads=4, pace=0.02))
    wait_until(lambda: tally.posts >= posts_before + 30 and sum(provider_sends(stack).values()) >= sends_before + 5,
               timeout=60, what="deliveries and webhooks under way", interval=0.02)
    took = stack.postgres.restart("fast")
    join_inbound()
    stack.wait_healthy()

    finish(stack, report_line, "postgres-restart", inbound=load, replies=replies, started=started,
           extra=f"pg_ctl restart -m fast took {took:.1f} s; webhooks {tally.summary()}")


def test_duplicate_storm(stack, desk, report_line):
    """Every webhook four times at once over both processes, and every task published four times."""
    from celery import Celery

    from channels_in.models import InboundEvent

    started = time.monotonic()
    tally = Tally()
    conversations = opened_conversations(stack, desk, "storm", 40, tally)
    load = mixed("storm", desk, 80)
    producer = Celery("chaos-producer", broker=stack.redis.url, set_as_current=False)
    try:
        posts_before = tally.posts
        post_all(load, stack.webs, tally, threads=8, copies=4)
        webhook_posts = tally.posts - posts_before
        with stack.db():
            event_ids = list(InboundEvent.objects.filter(event_id__in=[item.provider_id for item in load]).values_list("pk", flat=True))
        replies = desk.agent.reply_all(stack.webs, conversations, tag="storm", threads=4)
        # Redis redelivers, a sweep re-enqueues: the same task may run any number of times.
        for _ in range(3):
            for event_id in event_ids:
                producer.send_task("channels_in.inbound_process", args=[event_id], queue="inbound")
            for message_id in replies:
                producer.send_task("channels_in.outbound_deliver", args=[message_id], queue="outbound")
    finally:
        producer.close()

    finish(stack, report_line, "duplicate-storm", inbound=load, replies=replies, started=started,
           extra=f"{webhook_posts} webhook posts for {len(load)} events ({len(event_ids)} stored), "
                 f"{3 * (len(event_ids) + len(replies))} duplicate tasks published")


def test_status_callbacks_out_of_order(stack, desk, report_line):
    """Postmark delivery/bounce events and Twilio sent/delivered/failed callbacks, shuffled and twice each.

    DESIGN.md's rule: queued → sending → sent → delivered | failed, never backwards. Delivered
    and failed are both final: whichever arrives first stays; "sent" after either changes nothing.
    """
    from concurrent.futures import ThreadPoolExecutor
    from urllib.parse import urlencode

    from conversations.models import Message
    from tests.channels_in.sms_helpers import sign, status_params
    from tests.chaos.checks import settle
    from tests.chaos.traffic import POSTMARK_TRACKING, post_until_accepted
    from tests.fakes.tracking import postmark_bounce, postmark_delivery
    from tests.providers import basic_auth_header

    started = time.monotonic()
    tally = Tally()
    conversations = opened_conversations(stack, desk, "status", 40, tally)
    replies = desk.agent.reply_all(stack.webs, conversations, tag="status", threads=4)
    settle(stack)
    with stack.db():
        sent = {pk: (channel, external_id, to, status) for pk, channel, external_id, to, status in
                Message.objects.filter(pk__in=replies).values_list("pk", "channel", "external_id", "to_address", "delivery_status")}
    assert {row[3] for row in sent.values()} == {Message.DeliveryStatus.SENT}, sent

    def callbacks(pk: int) -> list[tuple[str, str, bytes, dict[str, str]]]:
        """(final status it asks for, path, body, headers) of each callback about one reply."""
        channel, external_id, to, _ = sent[pk]
        if channel == "email":
            auth = {"Authorization": basic_auth_header(), "Content-Type": "application/json"}
            events = [("delivered", postmark_delivery(message_id=external_id, recipient=to, metadata={"message_id": str(pk)})),
                      ("failed", postmark_bounce(message_id=external_id, recipient=to, metadata={"message_id": str(pk)}))]
            return [(status, POSTMARK_TRACKING, json.dumps(event).encode(), auth) for status, event in events]
        path = f"/twilio/status/{desk.sms_channel_uuid}/?m={pk}"
        found = []
        for twilio_status, status in (("sent", "sent"), ("delivered", "delivered"), ("failed", "failed")):
            params = status_params(external_id, twilio_status, to=to, error_code="30003" if twilio_status == "failed" else None)
            found.append((status, path, urlencode(params).encode(), params))
        return found

    def post(web, path: str, body: bytes, headers: dict[str, str]) -> None:
        if path.startswith("/twilio/"):  # signed over the URL of the process it goes to
            headers = {"X-Twilio-Signature": sign(web.base + path, headers), "Content-Type": "application/x-www-form-urlencoded"}
        response = post_until_accepted(web.base + path, body=body, headers=headers, tally=tally)
        assert response.status_code == 200, response.text[:300]

    expected: dict[int, str] = {}

    def deliver(pk: int) -> None:
        order = callbacks(pk) * 2
        random.shuffle(order)
        final = next((status for status, *_ in order if status in ("delivered", "failed")), "sent")
        expected[pk] = final
        for n, (_, path, body, headers) in enumerate(order):
            post(stack.webs[n % 2], path, body, headers)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(deliver, replies))
    with stack.db():
        final = dict(Message.objects.filter(pk__in=replies).values_list("pk", "delivery_status"))
        reasons = dict(Message.objects.filter(pk__in=replies, delivery_status="failed").values_list("pk", "delivery_error"))
    wrong = {pk: (final[pk], expected[pk]) for pk in replies if final[pk] != expected[pk]}
    outcome = sorted(Counter(final.values()).items())
    report = f"{tally.posts - 40} callbacks for {len(replies)} replies, final {dict(outcome)}, {len(wrong)} not as the rule says"

    finish(stack, report_line, "status-callbacks", inbound=[], replies=replies, started=started, extra=report)
    assert not wrong, f"final status (got, expected): {wrong}"
    assert all(reasons.values()), reasons
