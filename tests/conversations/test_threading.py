"""Which conversation an email lands in, and the rule recorded for it."""
from __future__ import annotations

import pytest

from channels_in.services import inbound_event_process, inbound_event_record
from conversations.models import Conversation, Message
from conversations.threading import parse_message_ids, reply_token, reply_token_conversation_id
from tests.factories import EmailChannelFactory, UserFactory
from tests.providers import build_email
from tickets.models import Ticket
from tickets.services import ticket_set_status

pytestmark = pytest.mark.django_db


@pytest.fixture
def channel():
    return EmailChannelFactory(address="support@acme.test")


def receive(email, recipient: str = "support@acme.test") -> Message:
    event, _ = inbound_event_record(provider="test", event_id=None, raw=email.as_bytes(), recipient=recipient)
    message = inbound_event_process(event_id=event.pk)
    assert message is not None
    return message


def test_references_thread_when_in_reply_to_is_unknown(channel):
    first = receive(build_email(message_id="<a1@example.org>"))

    reply = receive(build_email(message_id="<a3@example.org>", in_reply_to="<unknown@example.org>",
                                references="<a1@example.org> <unknown@example.org>"))

    assert reply.conversation_id == first.conversation_id
    assert reply.thread_rule == Message.ThreadRule.REFERENCES


def test_provider_substituted_message_id_threads(channel):
    # Amazon SES sends our reply as <ses-id@email.amazonses.com>; we stored ses-id at send time.
    first = receive(build_email(message_id="<b1@example.org>"))
    Message.objects.create(conversation=first.conversation, kind="outbound", channel="email", text="We are on it.",
                           rfc_message_id="ours@acme.test", external_id="0100018c-ses-id", delivery_status="sent")

    reply = receive(build_email(message_id="<b2@example.org>", in_reply_to="<0100018c-ses-id@email.amazonses.com>"))

    assert reply.conversation_id == first.conversation_id
    assert reply.thread_rule == Message.ThreadRule.IN_REPLY_TO


def test_signed_reply_address_threads_without_headers(channel):
    first = receive(build_email(message_id="<c1@example.org>"))
    token = reply_token(first.conversation_id)

    reply = receive(build_email(message_id="<c2@example.org>", subject="no headers here", to=f"support+{token}@acme.test"),
                    recipient=f"support+{token}@acme.test")

    assert reply.conversation_id == first.conversation_id
    assert reply.thread_rule == Message.ThreadRule.REPLY_TOKEN


def test_forged_reply_token_opens_a_new_conversation(channel):
    first = receive(build_email(message_id="<d1@example.org>"))
    forged = f"c{first.conversation_id}.0123456789abcdef"

    other = receive(build_email(message_id="<d2@example.org>", sender="mallory@evil.test", to=f"support+{forged}@acme.test"),
                    recipient=f"support+{forged}@acme.test")

    assert other.conversation_id != first.conversation_id
    assert other.thread_rule == Message.ThreadRule.NEW


def test_subject_tag_threads_only_for_a_participant(channel):
    first = receive(build_email(message_id="<e1@example.org>", sender="jane@example.org"))
    subject = f"Re: Printer on fire [#{first.conversation_id}]"

    from_jane = receive(build_email(message_id="<e2@example.org>", sender="Jane <JANE@example.org>", subject=subject))
    from_stranger = receive(build_email(message_id="<e3@example.org>", sender="eve@evil.test", subject=subject))

    assert from_jane.conversation_id == first.conversation_id
    assert from_jane.thread_rule == Message.ThreadRule.SUBJECT_TAG
    assert from_stranger.conversation_id != first.conversation_id
    assert from_stranger.thread_rule == Message.ThreadRule.NEW


def test_threading_never_crosses_inboxes(channel):
    EmailChannelFactory(address="sales@acme.test")
    first = receive(build_email(message_id="<f1@example.org>"))

    other = receive(build_email(message_id="<f2@example.org>", in_reply_to="<f1@example.org>", to="sales@acme.test"),
                    recipient="sales@acme.test")

    assert other.conversation_id != first.conversation_id


def test_customer_reply_reopens_a_solved_ticket_with_a_system_event(channel):
    first = receive(build_email(message_id="<g1@example.org>"))
    ticket = Ticket.objects.get(pk=first.conversation_id)
    ticket_set_status(ticket=ticket, status=Ticket.Status.SOLVED, by=UserFactory())

    receive(build_email(message_id="<g2@example.org>", in_reply_to="<g1@example.org>"))

    ticket.refresh_from_db()
    assert ticket.status == Ticket.Status.OPEN and ticket.solved_at is None
    system = Message.objects.filter(conversation_id=ticket.pk, kind=Message.Kind.SYSTEM).values_list("text", flat=True)
    assert any("Reopened by the customer's reply (was Solved)" in t for t in system)
    conversation = Conversation.objects.get(pk=ticket.pk)
    # Two customer messages, the satisfaction question asked on solving, two system lines.
    assert conversation.waiting_since is not None and conversation.message_count == 5


def test_quoted_history_is_folded_for_display(channel):
    text = "Thanks, that fixed it!\n\nOn Mon, Mar 3, 2025 at 10:15 AM Acme <support@acme.test> wrote:\n> Please restart.\n"

    message = receive(build_email(text=text))

    assert message.text_display == "Thanks, that fixed it!"
    assert "Please restart." in message.text


def test_parse_message_ids_and_token_roundtrip():
    assert parse_message_ids("<a@x> <b@y>\r\n <a@x>") == ["a@x", "b@y"]
    assert parse_message_ids("bare@x") == ["bare@x"]
    assert reply_token_conversation_id(reply_token(42)) == 42
    assert reply_token_conversation_id("c43." + reply_token(42).split(".")[1]) is None
