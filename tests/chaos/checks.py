"""The checks after every fault, read from the database and from the fake providers.

- every inbound message is in a timeline exactly once, counted by the provider's id;
- every outbound message reached its fake provider exactly once, counted by our message id
  (which each request carries: Postmark's Metadata, Twilio's StatusCallback ?m=), or is
  visibly `failed` with a reason;
- nothing is stuck once the sweeper has had its interval: no pending InboundEvent, no
  outbound message queued or sending;
- /healthz answers 200 on every ASGI process.
"""
from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from django.db.models import Count

from channels_in.models import InboundEvent
from conversations.models import Channel, Message
from tests.chaos.stack import SETTLE_TIMEOUT, Stack
from tests.chaos.traffic import Inbound
from tests.integration.conftest import wait_until

DONE = {Message.DeliveryStatus.SENT, Message.DeliveryStatus.DELIVERED, Message.DeliveryStatus.READ}
IN_FLIGHT = [Message.DeliveryStatus.QUEUED, Message.DeliveryStatus.SENDING]


def stuck(stack: Stack) -> tuple[int, int]:
    """(pending inbound events, outbound messages queued or sending)."""
    with stack.db():
        pending = InboundEvent.objects.filter(status=InboundEvent.Status.PENDING).count()
        outbound = Message.objects.filter(kind=Message.Kind.OUTBOUND, delivery_status__in=IN_FLIGHT).count()
    return pending, outbound


def settle(stack: Stack, *, timeout: float = SETTLE_TIMEOUT) -> float:
    """Wait until nothing is pending; returns the seconds it took."""
    return wait_until(lambda: stuck(stack) == (0, 0), timeout=timeout, what="no pending inbound event and no queued/sending reply",
                      interval=0.25)


def conversations_of(stack: Stack, items: Iterable[Inbound]) -> list[int]:
    """The conversation each item's timeline message landed in (items must be processed)."""
    ids = {item.external_id: item.kind for item in items}
    with stack.db():
        found = dict(Message.objects.filter(kind=Message.Kind.INBOUND, external_id__in=list(ids)).values_list("external_id", "conversation_id"))
    missing = set(ids) - set(found)
    assert not missing, f"{len(missing)} inbound messages not in any timeline"
    return [found[external_id] for external_id in ids]


def wait_in_timeline(stack: Stack, items: list[Inbound], timeout: float = 60) -> None:
    ids = [item.external_id for item in items]

    def arrived() -> bool:
        with stack.db():
            return Message.objects.filter(kind=Message.Kind.INBOUND, external_id__in=ids).values("external_id").distinct().count() == len(set(ids))

    wait_until(arrived, timeout=timeout, what=f"{len(ids)} inbound messages in the timeline", interval=0.25)


@dataclass
class InboundCount:
    sent: int = 0
    once: int = 0
    doubled: int = 0
    missing: int = 0
    events_not_processed: int = 0

    def line(self) -> str:
        return f"inbound {self.sent} sent, {self.once} in timeline once, {self.doubled} doubled, {self.missing} missing"

    def ok(self) -> bool:
        return self.once == self.sent and not (self.doubled or self.missing or self.events_not_processed)


def inbound_count(stack: Stack, items: list[Inbound]) -> InboundCount:
    channels = {"email": Channel.EMAIL, "sms": Channel.SMS}
    result = InboundCount(sent=len(items))
    with stack.db():
        counts = Counter()
        for kind in ("email", "sms"):
            ids = [item.external_id for item in items if item.kind == kind]
            rows = (Message.objects.filter(kind=Message.Kind.INBOUND, channel=channels[kind], external_id__in=ids)
                    .values("external_id").annotate(n=Count("id")).values_list("external_id", "n"))
            counts.update(dict(rows))
        provider_ids = [item.provider_id for item in items]
        processed = InboundEvent.objects.filter(event_id__in=provider_ids, status=InboundEvent.Status.PROCESSED).count()
    for item in items:
        n = counts.get(item.external_id, 0)
        result.once += n == 1
        result.doubled += n > 1
        result.missing += n == 0
    result.events_not_processed = len(set(provider_ids)) - processed
    return result


@dataclass
class OutboundCount:
    replies: int = 0
    sent_once: int = 0
    failed: int = 0
    failed_without_reason: int = 0
    doubled: int = 0  # reached the provider more than once
    never_reached: int = 0  # marked sent or delivered, yet the provider never accepted it
    stuck: int = 0
    statuses: Counter = field(default_factory=Counter)
    reasons: list[str] = field(default_factory=list)
    doubled_ids: list[tuple[int, str, int]] = field(default_factory=list)  # (message id, channel, sends)

    def line(self) -> str:
        return (f"outbound {self.replies} replies, {self.sent_once} sent once at the fake provider, {self.failed} failed, "
                f"{self.doubled} doubled, {self.stuck} stuck")

    def ok(self) -> bool:
        return self.sent_once + self.failed == self.replies and not (self.doubled or self.never_reached or self.stuck
                                                                      or self.failed_without_reason)


def provider_sends(stack: Stack) -> Counter:
    """Accepted sends at the fake providers, by our message id."""
    sends: Counter = Counter()
    for request in list(stack.postmark.received):
        if request.message_id is not None:  # Postmark answered 200 with its MessageID
            sends[int(request.json.get("Metadata", {})["message_id"])] += 1
    for request in stack.twilio.sends():
        if request.sid is not None:  # Twilio answered 201 with an SM sid
            query = parse_qs(urlsplit(request.form["StatusCallback"]).query)
            sends[int(query["m"][0])] += 1
    return sends


def outbound_count(stack: Stack, message_ids: Iterable[int] | None = None) -> OutboundCount:
    """Every outbound message given (None: every outbound message in the database)."""
    sends = provider_sends(stack)
    with stack.db():
        rows = Message.objects.filter(kind=Message.Kind.OUTBOUND).exclude(channel=Channel.WEBCHAT)
        if message_ids is not None:
            rows = rows.filter(pk__in=list(message_ids))
        rows = list(rows.values_list("pk", "channel", "delivery_status", "delivery_error"))
    result = OutboundCount(replies=len(rows))
    for pk, channel, status, error in rows:
        result.statuses[status] += 1
        reached = sends.get(pk, 0)
        result.doubled += reached > 1
        if reached > 1:
            result.doubled_ids.append((pk, channel, reached))
        if status in DONE:
            result.sent_once += reached == 1
            result.never_reached += reached == 0
        elif status == Message.DeliveryStatus.FAILED:
            result.failed += 1
            result.failed_without_reason += not error.strip()
            result.reasons.append(error)
        else:
            result.stuck += 1
    return result


def healthy(stack: Stack, timeout: float = 20) -> str:
    """/healthz of each process, waiting a little for 200: it pings the workers with a 1 s
    timeout, which a worker busy with a backlog may miss once."""
    deadline = time.monotonic() + timeout
    while True:
        statuses = stack.healthz()
        if set(statuses.values()) == {200} or time.monotonic() > deadline:
            return ", ".join(f"{name} {status}" for name, status in statuses.items())
        time.sleep(0.5)


@dataclass
class Report:
    """One fault's outcome: the line `make chaos` prints, and the verdict."""

    name: str
    inbound: InboundCount
    outbound: OutboundCount
    everything: OutboundCount
    health: str
    dead_workers: list[str] = field(default_factory=list)  # worker processes that died without being killed
    known_doubles: frozenset[int] = frozenset()  # doubled replies an earlier fault already reported
    extra: str = ""
    took: float = 0.0

    def line(self) -> str:
        parts = [self.inbound.line(), self.outbound.line()]
        if self.extra:
            parts.append(self.extra)
        parts.append(f"all replies so far: {self.everything.sent_once} sent once, {self.everything.failed} failed, "
                     f"{self.everything.doubled} doubled, {self.everything.stuck} stuck")
        parts.append(f"healthz {self.health}, {len(self.dead_workers)} workers died; {self.took:.1f} s")
        return f"chaos {self.name}: " + "; ".join(parts)

    def problems(self) -> list[str]:
        found = []
        if not self.inbound.ok():
            found.append(f"inbound: {self.inbound}")
        if not self.outbound.ok():
            found.append(f"this fault's replies: {self.outbound} doubled (id, channel, sends): {self.outbound.doubled_ids}")
        everything = self.everything
        new_doubles = [d for d in everything.doubled_ids if d[0] not in self.known_doubles]
        if new_doubles or everything.stuck or everything.never_reached or everything.failed_without_reason:
            found.append(f"all replies: {everything} doubled since the last fault: {new_doubles}")
        if set(self.health.split(", ")) != {f"{web} 200" for web in ("A", "B")}:
            found.append(f"healthz: {self.health}")
        if self.dead_workers:
            found.append(f"workers exited by themselves: {', '.join(self.dead_workers)}")
        return found


def check_after_fault(stack: Stack, name: str, *, inbound: list[Inbound], replies: list[int], extra: str = "",
                      started: float, killed: tuple[str, ...] = ()) -> Report:
    """Settle, count, and report; the caller records the line before asserting."""
    try:
        settle(stack)
    except AssertionError:
        pass  # reported below as stuck work, with the counts
    dead = [f"{slot} ({worker.name}, exit {worker.popen.returncode})" for slot, worker in stack.workers.items()
            if slot not in killed and not worker.alive()]
    report = Report(name=name, inbound=inbound_count(stack, inbound), outbound=outbound_count(stack, replies),
                    everything=outbound_count(stack), health=healthy(stack), dead_workers=dead, extra=extra,
                    took=time.monotonic() - started, known_doubles=frozenset(stack.reported_doubles))
    # Each double fails the fault that caused it, not every fault after it.
    stack.reported_doubles.update(pk for pk, _, _ in report.everything.doubled_ids)
    return report
