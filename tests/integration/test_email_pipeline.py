"""Nothing lost, nothing doubled: the email pipeline with a real Redis and real Celery workers.

Inbound: a provider webhook stores the event and publishes after commit; a worker turns
it into one timeline message. Outbound: an agent's reply is sent by a worker through the
real anymail Postmark backend to a local fake of Postmark's API. Failures are real too:
SIGKILLed pool children and worker main processes, and a Redis that crashes and restarts
empty or hangs. Celery beat runs the production sweep schedule (every SWEEP_EVERY s here).
"""
from __future__ import annotations

import os
import re
import signal
import time

import pytest
from django.db import connection

from channels_in.models import InboundEvent
from conversations.models import Conversation, Message
from conversations.services import reply_create, reply_retry
from tests.factories import EmailChannelFactory, UserFactory
from tests.fakes.desk import SUPPORT, post_inbound_email
from tests.fakes.postmark import FakePostmark, Reply
from tests.integration.conftest import STUCK_AFTER, SWEEP_EVERY, VISIBILITY_TIMEOUT, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

INBOUND_RECEIVED = re.compile(r"Task channels_in\.inbound_process\[([0-9a-f-]{36})\] received")
# A lost enqueue is re-published STUCK_AFTER s after the event arrived, at the next sweep.
RECOVERY = STUCK_AFTER + SWEEP_EVERY + 10


@pytest.fixture(autouse=True)
def channel():  # noqa: ANN201
    return EmailChannelFactory(address=SUPPORT)


def receive(client, *, subject: str, message_id: str) -> int:  # noqa: ANN001
    """The customer's mail arrives through Mailgun's webhook; returns the stored event's id."""
    known = set(InboundEvent.objects.values_list("pk", flat=True))
    assert post_inbound_email(client, subject=subject, message_id=message_id).status_code == 200
    [event_id] = set(InboundEvent.objects.values_list("pk", flat=True)) - known
    return event_id


def event_status(event_id: int) -> str:
    return InboundEvent.objects.get(pk=event_id).status


def processed(event_id: int) -> bool:
    return event_status(event_id) == InboundEvent.Status.PROCESSED


def attempts_counted(*, runs: int, killed_waiting: int) -> int:
    """The attempts an event records after `runs` runs plus `killed_waiting` runs killed in their first write.

    A run counts its attempt with its first statement, which the write lock held up. On
    SQLite that statement waits inside the worker process and dies with it. On PostgreSQL it
    was already sent: the server's backend waits for the row lock and, once the lock is
    released, runs and commits it although nobody is left to read the result.
    """
    return runs + (killed_waiting if connection.vendor == "postgresql" else 0)


def settled(cluster) -> bool:  # noqa: ANN001
    """No inbound work left in Redis: nothing queued, nothing handed out and unacked."""
    return cluster.redis.queued("inbound") == 0 and cluster.redis.unacked() == 0


def inbound_task_in_progress(cluster, worker, lock) -> str:  # noqa: ANN001
    """Wait until the worker's pool child is inside the inbound task, held by `lock`; returns its task id."""
    worker.wait_for_log("Task channels_in.inbound_process[")
    [child] = worker.children()
    lock.wait_for_writer(child)
    assert cluster.redis.unacked() == 1  # acks_late: the message is handed out, not acked
    return INBOUND_RECEIVED.search(worker.log()).group(1)


@pytest.fixture
def fake_postmark():  # noqa: ANN201
    fake = FakePostmark().start()
    yield fake
    fake.stop()


def test_pool_child_killed_mid_task(cluster, client, write_lock):
    event_id = receive(client, subject="Kill the child", message_id="<child-killed.1@mail.example.org>")
    assert cluster.redis.queued("inbound") == 1

    with write_lock() as lock:
        worker = cluster.start_worker("w1")
        task_id = inbound_task_in_progress(cluster, worker, lock)
        [child] = worker.children()
        os.kill(child, signal.SIGKILL)
        killed_at = time.monotonic()
        worker.wait_for_log("WorkerLostError")
        lock.release()

    wait_until(lambda: processed(event_id), timeout=RECOVERY, what="the event to be processed")
    took = time.monotonic() - killed_at
    cluster.start_beat()  # production runs it too: its sweeps must not add anything
    wait_until(lambda: settled(cluster), timeout=10, what="Redis to have no inbound work left")

    # reject_on_worker_lost: the main process put the message back and ran it again at once.
    assert worker.log().count(f"Task channels_in.inbound_process[{task_id}] received") == 2
    assert Message.objects.count() == 1, cluster.logs()
    event = InboundEvent.objects.get()
    assert event.message_id == Message.objects.get().pk
    # The killed run left no message behind (on SQLite not even its attempt count).
    assert event.attempts == attempts_counted(runs=1, killed_waiting=1)
    assert Conversation.objects.get().message_count == 1
    print(f"\npool child killed: processed {took:.1f} s after the kill")  # noqa: T201 - timing for the report


def test_worker_main_process_killed_mid_task(cluster, client, write_lock):
    event_id = receive(client, subject="Kill the worker", message_id="<main-killed.1@mail.example.org>")

    with write_lock() as lock:
        w1 = cluster.start_worker("w1")
        task_id = inbound_task_in_progress(cluster, w1, lock)
        handed_out_at = time.monotonic()
        # A second node, up well within the visibility timeout: kombu scans for expired
        # unacked messages when a worker starts and then only every ~100 s.
        w2 = cluster.start_worker("w2")
        w1.kill()
        killed_at = time.monotonic()
        # Redis keeps the message in "unacked" until the visibility timeout: no worker gets it now.
        assert (cluster.redis.queued("inbound"), cluster.redis.unacked()) == (0, 1)

    cluster.start_beat()
    wait_until(lambda: processed(event_id), timeout=RECOVERY, what="the sweeper to recover the event")
    took = time.monotonic() - killed_at
    assert Message.objects.count() == 1, cluster.logs()
    assert task_id not in w2.log()  # the database sweeper did it, not a Redis redelivery

    # Past the visibility timeout a starting worker hands the original message out again.
    time.sleep(max(0.0, handed_out_at + VISIBILITY_TIMEOUT + 1 - time.monotonic()))
    w2.stop()
    w3 = cluster.start_worker("w3")
    w3.wait_for_log(f"Task channels_in.inbound_process[{task_id}] received")
    w3.wait_for_log(f"Task channels_in.inbound_process[{task_id}] succeeded")
    wait_until(lambda: settled(cluster), timeout=10, what="Redis to have no inbound work left")

    assert Message.objects.count() == 1, cluster.logs()  # the redelivery was a no-op
    assert InboundEvent.objects.get().attempts == attempts_counted(runs=1, killed_waiting=1)
    print(f"\nworker main killed: recovered by the sweeper on the other node {took:.1f} s after the kill")  # noqa: T201


def test_redis_down_webhook_and_reply_are_kept_and_the_sweeper_delivers_them(cluster, client, caplog, fake_postmark):
    cluster.start_worker("w1", TEST_POSTMARK_API_URL=fake_postmark.url, TEST_POSTMARK_SERVER_TOKEN=fake_postmark.token)
    cluster.start_beat()
    before = "<before-outage.1@mail.example.org>"
    first = receive(client, subject="Before the outage", message_id=before)
    wait_until(lambda: processed(first), timeout=15, what="the first event to be processed")

    cluster.redis.crash()
    during = "<during-outage.1@mail.example.org>"
    started = time.monotonic()
    response = post_inbound_email(client, subject="During the outage", message_id=during)
    elapsed = time.monotonic() - started
    reply = reply_create(conversation=Conversation.objects.get(), author=UserFactory(), text="Still on it.")

    assert response.status_code == 200
    assert elapsed < 5, f"the webhook took {elapsed:.2f} s with Redis down"
    second = InboundEvent.objects.latest("pk").pk
    assert second != first and event_status(second) == InboundEvent.Status.PENDING  # stored durably
    assert "could not enqueue inbound event" in caplog.text
    assert f"could not enqueue delivery of message {reply.pk}" in caplog.text

    cluster.redis.start()  # same port, empty: whatever it held is gone
    restarted_at = time.monotonic()
    wait_until(lambda: processed(second), timeout=RECOVERY + 10, what="the sweeper to deliver the stored event")
    took = time.monotonic() - restarted_at
    third = receive(client, subject="After the outage", message_id="<after-outage.1@mail.example.org>")
    assert f"could not enqueue inbound event {third}" not in caplog.text  # the web side reconnected by itself
    wait_until(lambda: processed(third), timeout=15, what="the third event to be processed")
    wait_until(lambda: Message.objects.get(pk=reply.pk).delivery_status == Message.DeliveryStatus.SENT, timeout=RECOVERY,
               what="the sweeper to send the queued reply")
    wait_until(lambda: settled(cluster), timeout=10, what="Redis to have no inbound work left")

    assert Message.objects.filter(kind=Message.Kind.INBOUND).count() == 3, cluster.logs()
    assert sorted(Message.objects.filter(kind=Message.Kind.INBOUND).values_list("rfc_message_id", flat=True)) == sorted(
        [before.strip("<>"), during.strip("<>"), "after-outage.1@mail.example.org"]
    )
    [sent] = fake_postmark.received
    assert sent.header("Message-ID") == f"<{reply.rfc_message_id}>"
    print(f"\nRedis down: webhook answered 200 in {elapsed * 1000:.0f} ms; processed {took:.1f} s after Redis restarted")  # noqa: T201


def test_hung_redis_webhook_answers_within_seconds_and_nothing_is_doubled(cluster, client, caplog):
    cluster.start_worker("w1")
    cluster.start_beat()
    first = receive(client, subject="Before the hang", message_id="<before-hang.1@mail.example.org>")
    wait_until(lambda: processed(first), timeout=15, what="the first event to be processed")

    cluster.redis.pause()
    started = time.monotonic()
    response = post_inbound_email(client, subject="During the hang", message_id="<during-hang.1@mail.example.org>")
    elapsed = time.monotonic() - started

    assert response.status_code == 200
    assert elapsed < 5, f"the webhook took {elapsed:.2f} s with Redis hung"
    second = InboundEvent.objects.latest("pk").pk
    assert second != first and event_status(second) == InboundEvent.Status.PENDING
    assert "could not enqueue inbound event" in caplog.text

    # The timed-out publish may still sit in Redis's socket buffer and run on resume, besides
    # the sweeper's re-enqueue: either way one message.
    cluster.redis.resume()
    wait_until(lambda: processed(second), timeout=RECOVERY + 10, what="the event to be processed after the hang")
    wait_until(lambda: settled(cluster), timeout=15, what="Redis to have no inbound work left")

    assert Message.objects.filter(kind=Message.Kind.INBOUND).count() == 2, cluster.logs()
    print(f"\nRedis hung: webhook answered 200 in {elapsed * 1000:.0f} ms")  # noqa: T201


def open_conversation(client, subject: str) -> Conversation:  # noqa: ANN001
    event_id = receive(client, subject=subject, message_id=f"<{subject.replace(' ', '-').lower()}.1@mail.example.org>")
    wait_until(lambda: processed(event_id), timeout=15, what="the inbound event to be processed")
    return Conversation.objects.get()


def sweeps_done(worker) -> int:  # noqa: ANN001
    return len(re.findall(r"Task channels_in\.sweep\[[0-9a-f-]+\] succeeded", worker.log()))


def test_reply_is_delivered_once_by_a_real_worker(cluster, client, fake_postmark):
    worker = cluster.start_worker("w1", TEST_POSTMARK_API_URL=fake_postmark.url, TEST_POSTMARK_SERVER_TOKEN=fake_postmark.token)
    cluster.start_beat()
    conversation = open_conversation(client, "Printer on fire")

    message = reply_create(conversation=conversation, author=UserFactory(), text="Unplug it, please.")
    wait_until(lambda: Message.objects.get(pk=message.pk).delivery_status == Message.DeliveryStatus.SENT, timeout=15,
               what="the reply to be sent")
    # Past the reply's first-enqueue grace, with sweeps running: nothing is sent again.
    sweeps = sweeps_done(worker)
    time.sleep(max(0.0, STUCK_AFTER + 1 - (time.time() - message.created_at.timestamp())))
    wait_until(lambda: sweeps_done(worker) >= sweeps + 2, timeout=10, what="two more sweeps")

    [request] = fake_postmark.received
    message.refresh_from_db()
    assert message.external_id == request.message_id
    assert request.header("Message-ID") == f"<{message.rfc_message_id}>"
    assert request.header("In-Reply-To") == "<printer-on-fire.1@mail.example.org>"
    assert request.json["Subject"] == f"Re: Printer on fire [#{conversation.pk}]"


def test_reply_whose_worker_died_mid_send_fails_visibly_and_is_sent_again_only_on_retry(cluster, client, fake_postmark):
    worker = cluster.start_worker("w1", TEST_POSTMARK_API_URL=fake_postmark.url, TEST_POSTMARK_SERVER_TOKEN=fake_postmark.token)
    cluster.start_beat()
    conversation = open_conversation(client, "Refund please")
    fake_postmark.queue(Reply(delay=15))  # Postmark got the request; its answer never arrives

    message = reply_create(conversation=conversation, author=UserFactory(), text="Refunded.")
    fake_postmark.wait_for(1, timeout=15)
    [child] = worker.children()
    os.kill(child, signal.SIGKILL)
    worker.wait_for_log("WorkerLostError")

    # Whether Postmark sent it is unknown: after OUTBOUND_STUCK_AFTER the sweeper shows it as
    # failed with the reason instead of sending a second copy blind.
    wait_until(lambda: Message.objects.get(pk=message.pk).delivery_status == Message.DeliveryStatus.FAILED,
               timeout=STUCK_AFTER + 20, what="the reply to be marked failed")
    sweeps = sweeps_done(worker)
    wait_until(lambda: sweeps_done(worker) >= sweeps + 2, timeout=10, what="two more sweeps")
    [first] = fake_postmark.received
    message.refresh_from_db()
    assert "may or may not have been sent" in message.delivery_error

    # The agent retries from the timeline: one more send, with the same Message-ID, so a
    # mail client that got both shows one message.
    reply_retry(message=message)
    wait_until(lambda: Message.objects.get(pk=message.pk).delivery_status == Message.DeliveryStatus.SENT,
               timeout=20, what="the retried reply to be sent")
    first, second = fake_postmark.received
    message.refresh_from_db()
    assert first.header("Message-ID") == second.header("Message-ID") == f"<{message.rfc_message_id}>"
    assert message.external_id == second.message_id
