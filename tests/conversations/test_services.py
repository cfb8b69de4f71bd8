"""Timeline writes: contacts, replies, notes, delivery status."""
from __future__ import annotations

import pytest
from django.utils import timezone

from conversations.models import ContactIdentity, Event, Message
from conversations.services import (
    ApplicationError,
    contact_get_or_create,
    delivery_status_record,
    note_create,
    reply_create,
)
from tests.factories import ConversationFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_contact_identity_is_normalised_and_reused():
    first = contact_get_or_create(kind="email", address=" Jane@Example.ORG ", name="Jane")
    again = contact_get_or_create(kind="email", address="jane@example.org")

    assert first == again
    assert ContactIdentity.objects.get().address == "jane@example.org"


def test_phone_identities_are_one_number_however_written():
    first = contact_get_or_create(kind="phone", address="+1 (415) 555-0100")
    again = contact_get_or_create(kind="phone", address="+14155550100")

    assert first == again
    assert ContactIdentity.objects.get().address == "+14155550100"


def test_sms_reply_to_an_opted_out_number_is_refused_however_the_number_is_written():
    conversation = ConversationFactory(contact__phone="+1 415 555 0100")
    ContactIdentity.objects.create(contact=conversation.contact, kind="phone", address="+14155550100",
                                   sms_opted_out_at=timezone.now(), sms_consent_keyword="STOP")

    with pytest.raises(ApplicationError, match=r"\+14155550100 opted out of SMS \(STOP"):
        reply_create(conversation=conversation, author=UserFactory(), text="Hello", channel="sms")
    assert not conversation.messages.exists()


def test_reply_is_queued_in_the_outbox_and_clears_waiting(tasks, django_capture_on_commit_callbacks):
    conversation = ConversationFactory(waiting_since="2025-01-01T00:00:00Z")
    agent = UserFactory()

    with django_capture_on_commit_callbacks(execute=True):
        message = reply_create(conversation=conversation, author=agent, text="On it!")

    conversation.refresh_from_db()
    assert message.delivery_status == Message.DeliveryStatus.QUEUED
    assert message.rfc_message_id.endswith("@example.com")
    assert conversation.waiting_since is None and conversation.last_message_preview == "On it!"
    assert tasks.sent == [("channels_in.outbound_deliver", (message.pk,))]
    assert Event.objects.filter(type="message.created", message=message).exists()


def test_empty_reply_is_refused_and_writes_nothing(tasks):
    with pytest.raises(ApplicationError):
        reply_create(conversation=ConversationFactory(), author=UserFactory(), text="   ")
    assert Message.objects.count() == 0 and tasks.sent == []


def test_note_is_internal_and_never_delivered(tasks):
    note = note_create(conversation=ConversationFactory(), author=UserFactory(), text="Customer is VIP")

    assert note.kind == Message.Kind.NOTE and note.channel == "internal" and note.delivery_status == ""
    assert tasks.sent == []


@pytest.mark.parametrize(
    ("start", "receipt", "expected"),
    [
        ("sent", "delivered", "delivered"),
        ("delivered", "sent", "delivered"),
        ("delivered", "delivered", "delivered"),
        ("sent", "failed", "failed"),
        ("failed", "delivered", "failed"),
        ("queued", "sent", "sent"),
    ],
)
def test_delivery_status_only_moves_forward(start, receipt, expected):
    message = Message.objects.create(conversation=ConversationFactory(), kind="outbound", channel="email", delivery_status=start)

    changed = delivery_status_record(message=message, status=receipt, reason="550 no such user")

    message.refresh_from_db()
    assert message.delivery_status == expected
    assert changed is (start != expected)
    if expected == "failed" and changed:
        assert message.delivery_error == "550 no such user"
