"""The sweeper: work whose enqueue was lost, or whose worker died, is handed out again."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import TestCase
from django.utils import timezone

from channels_in.models import InboundEvent
from channels_in.services import inbound_event_record, sweep
from conversations.models import Event, Message
from helpdesk.celery import app as celery_app
from tests.factories import ConversationFactory, EmailChannelFactory, MessageFactory
from tests.providers import build_email

pytestmark = pytest.mark.django_db

INBOUND = "channels_in.inbound_process"
DELIVER = "channels_in.outbound_deliver"


@pytest.fixture
def stuck_after(settings) -> dict[str, int]:
    settings.HELPDESK = {**settings.HELPDESK, "QUEUE_STUCK_AFTER_SECONDS": 30, "OUTBOUND_STUCK_AFTER_SECONDS": 300}
    return settings.HELPDESK


def ago(seconds: float):  # noqa: ANN201
    return timezone.now() - timedelta(seconds=seconds)


def inbound_event(*, age: float, status: str = InboundEvent.Status.PENDING, subject: str = "Help") -> InboundEvent:
    """An event as the webhook stores it (its first enqueue runs on commit), then aged."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        event, _ = inbound_event_record(provider="mailgun", event_id=None, raw=build_email(subject=subject).as_bytes(),
                                        recipient="support@acme.test")
    InboundEvent.objects.filter(pk=event.pk).update(received_at=ago(age), status=status)
    return event


def outbound(*, status: str, due_in: float | None = None, updated_ago: float = 0, conversation=None) -> Message:  # noqa: ANN001
    return MessageFactory(
        conversation=conversation or ConversationFactory(),
        kind=Message.Kind.OUTBOUND,
        rfc_message_id="x@acme.test",
        delivery_status=status,
        next_attempt_at=None if due_in is None else timezone.now() + timedelta(seconds=due_in),
        delivery_updated_at=ago(updated_ago),
    )


def test_only_stuck_inbound_events_are_enqueued(stuck_after, tasks):
    stuck = inbound_event(age=31, subject="Lost enqueue")
    inbound_event(age=5)  # fresh: its own task is still on the way
    inbound_event(age=600, status=InboundEvent.Status.PROCESSED)
    inbound_event(age=600, status=InboundEvent.Status.FAILED)
    tasks.sent.clear()

    assert sweep() == {"inbound": 1, "outbound": 0, "interrupted": 0}

    assert tasks.sent == [(INBOUND, (stuck.pk,))]


def test_a_waiting_event_is_enqueued_again_less_often_the_longer_it_waits(stuck_after, tasks):
    # Under a backlog the event's own task is still queued: re-enqueueing it at every sweep
    # would pile copies onto the very queue that is behind.
    event = inbound_event(age=31)
    tasks.sent.clear()
    assert sweep()["inbound"] == 1  # a lost task is redone within the first window
    assert sweep()["inbound"] == 0  # not again at the next sweep

    InboundEvent.objects.filter(pk=event.pk).update(received_at=ago(100), swept_at=ago(35))
    assert sweep()["inbound"] == 0  # waited 35 s since, less than half its age (50 s)
    InboundEvent.objects.filter(pk=event.pk).update(swept_at=ago(51))
    assert sweep()["inbound"] == 1
    assert tasks.sent == [(INBOUND, (event.pk,)), (INBOUND, (event.pk,))]


def test_stuck_event_is_processed_once_even_when_enqueued_twice(stuck_after, tasks):
    EmailChannelFactory(address="support@acme.test")
    event = inbound_event(age=31)  # its first task is still in the broker, say
    sweep()

    assert tasks.names() == [INBOUND, INBOUND]
    tasks.drain()

    event.refresh_from_db()
    assert event.status == InboundEvent.Status.PROCESSED and event.attempts == 1
    assert Message.objects.filter(kind=Message.Kind.INBOUND).count() == 1
    assert sweep()["inbound"] == 0


def test_sending_left_by_a_dead_worker_fails_visibly_instead_of_being_sent_again(stuck_after, tasks):
    # The dead worker may have handed it to the provider already: a blind resend could send
    # the customer two copies. An agent decides, with the reason in front of them.
    dead = outbound(status=Message.DeliveryStatus.SENDING, due_in=-60, updated_ago=301)
    busy = outbound(status=Message.DeliveryStatus.SENDING, due_in=-60, updated_ago=10)

    assert sweep() == {"inbound": 0, "outbound": 0, "interrupted": 1}

    dead.refresh_from_db()
    busy.refresh_from_db()
    assert dead.delivery_status == Message.DeliveryStatus.FAILED
    assert "may or may not have been sent" in dead.delivery_error
    assert dead.next_attempt_at is None
    assert busy.delivery_status == Message.DeliveryStatus.SENDING
    assert tasks.sent == []
    assert Event.objects.filter(type="message.updated", message_id=dead.pk).count() == 1
    assert sweep()["interrupted"] == 0  # once


def test_only_due_queued_replies_are_enqueued(stuck_after, tasks):
    due = outbound(status=Message.DeliveryStatus.QUEUED, due_in=-1)
    outbound(status=Message.DeliveryStatus.QUEUED, due_in=120)  # backing off
    outbound(status=Message.DeliveryStatus.SENT, due_in=None)
    outbound(status=Message.DeliveryStatus.FAILED, due_in=None)

    assert sweep() == {"inbound": 0, "outbound": 1, "interrupted": 0}

    assert tasks.sent == [(DELIVER, (due.pk,))]


def test_a_broker_outage_does_not_stop_the_sweep(stuck_after, tasks, monkeypatch, caplog):
    def broker_down(*args: object, **kwargs: object) -> None:
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(celery_app, "send_task", broker_down)
    event = inbound_event(age=31)
    message = outbound(status=Message.DeliveryStatus.QUEUED, due_in=-1)

    assert sweep() == {"inbound": 1, "outbound": 1, "interrupted": 0}

    event.refresh_from_db()
    message.refresh_from_db()
    assert event.status == InboundEvent.Status.PENDING  # still there for the next sweep
    assert message.delivery_status == Message.DeliveryStatus.QUEUED
    assert f"could not enqueue inbound event {event.pk}" in caplog.text
    assert f"could not enqueue delivery of message {message.pk}" in caplog.text


@pytest.mark.parametrize("idle", [1, 25])
def test_sweep_queries_do_not_grow_with_idle_rows(stuck_after, tasks, django_assert_num_queries, idle):
    conversation = ConversationFactory()
    for _ in range(idle):
        inbound_event(age=5)
        inbound_event(age=600, status=InboundEvent.Status.PROCESSED)
        outbound(status=Message.DeliveryStatus.QUEUED, due_in=120, conversation=conversation)
        outbound(status=Message.DeliveryStatus.SENDING, due_in=-60, updated_ago=10, conversation=conversation)
        outbound(status=Message.DeliveryStatus.SENT, conversation=conversation)
    due = outbound(status=Message.DeliveryStatus.QUEUED, due_in=-1, conversation=conversation)
    tasks.sent.clear()

    # 1. SELECT pending inbound events received before the cut-off
    # 2. SELECT sending replies idle past the cut-off (none here)
    # 3. SELECT queued replies whose next attempt is due
    with django_assert_num_queries(3):
        result = sweep()

    assert result == {"inbound": 0, "outbound": 1, "interrupted": 0}
    assert tasks.sent == [(DELIVER, (due.pk,))]
