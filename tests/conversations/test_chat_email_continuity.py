"""A chat visitor's emailed answer: one customer across channels, only with proof of receipt.

The visitor left an (unverified) email in the pre-chat form; an agent's reply went to it by
email. The answer threads into the chat by our Message-ID or signed reply address, which
proves the sender received our mail: then the address becomes the chat contact's email
identity. Without that proof no contact gains an identity.
"""
from __future__ import annotations

import pytest

from channels_in.services import inbound_event_process, inbound_event_record
from conversations.models import Contact, ContactIdentity, Conversation, Message
from conversations.threading import reply_token
from tests.factories import ContactFactory, EmailChannelFactory, MessageFactory, TicketFactory, UserFactory, WebChatChannelFactory
from tests.providers import build_email
from tickets.services import conversation_merge

pytestmark = pytest.mark.django_db

OUR_REPLY_ID = "reply.7f3a@desk.acme.test"


@pytest.fixture
def chat():
    """A web chat conversation whose contact gave jane@example.org in the pre-chat form."""
    inbox = WebChatChannelFactory(inbox__name="Website chat").inbox
    EmailChannelFactory(inbox=inbox, address="chat@acme.test")
    contact = ContactFactory(name="Jane", email="jane@example.org")
    ContactIdentity.objects.filter(contact=contact).delete()  # unverified: no identity
    ContactIdentity.objects.create(contact=contact, kind="visitor", address="visitor-1")
    conversation = TicketFactory(conversation__inbox=inbox, conversation__contact=contact, conversation__subject="Chat").conversation
    MessageFactory(conversation=conversation, channel="webchat", author_contact=contact, text="Is my order shipped?")
    # The agent's web chat reply, sent by email while the visitor was away: our Message-ID.
    MessageFactory(conversation=conversation, kind=Message.Kind.OUTBOUND, channel="webchat", text="It ships today.",
                   rfc_message_id=OUR_REPLY_ID, delivery_status=Message.DeliveryStatus.SENT)
    return conversation


def receive(email, recipient: str = "chat@acme.test") -> Message:
    event, _ = inbound_event_record(provider="test", event_id=None, raw=email.as_bytes(), recipient=recipient)
    message = inbound_event_process(event_id=event.pk)
    assert message is not None
    return message


def test_an_answer_to_our_email_joins_the_chat_contact(chat):
    contact = chat.contact

    message = receive(build_email(sender="Jane <Jane@Example.org>", to="chat@acme.test", subject="Re: Chat",
                                  text="Thanks, got it!", in_reply_to=f"<{OUR_REPLY_ID}>"))

    assert message.conversation_id == chat.pk
    assert message.author_contact_id == contact.pk and message.thread_rule == Message.ThreadRule.IN_REPLY_TO
    assert ContactIdentity.objects.get(kind="email", address="jane@example.org").contact_id == contact.pk
    assert Contact.objects.count() == 1  # no second "Jane"


def test_the_signed_reply_address_is_proof_too(chat):
    message = receive(build_email(sender="jane@example.org", to=f"chat+{reply_token(chat.pk)}@acme.test", subject="Hello"),
                      recipient=f"chat+{reply_token(chat.pk)}@acme.test")

    assert message.conversation_id == chat.pk and message.thread_rule == Message.ThreadRule.REPLY_TOKEN
    assert ContactIdentity.objects.get(kind="email", address="jane@example.org").contact_id == chat.contact_id


def test_without_proof_of_receipt_nothing_is_attached(chat):
    # The same address, but a fresh email (a guessable subject tag is no proof).
    message = receive(build_email(sender="jane@example.org", subject=f"Order [#{chat.pk}]", text="Me again"))

    assert message.conversation_id != chat.pk
    assert message.author_contact_id != chat.contact_id
    assert not chat.contact.identities.filter(kind="email").exists()


def test_another_sender_in_the_thread_does_not_become_the_chat_contact(chat):
    message = receive(build_email(sender="mallory@example.net", in_reply_to=f"<{OUR_REPLY_ID}>", subject="Re: Chat"))

    # It threads (today's behaviour), but as its own contact; the chat contact gains nothing.
    assert message.conversation_id == chat.pk
    assert message.author_contact.email == "mallory@example.net" and message.author_contact_id != chat.contact_id
    assert not chat.contact.identities.filter(kind="email").exists()


def test_an_address_that_already_belongs_to_a_contact_stays_with_it(chat):
    owner = ContactFactory(name="Jane (email)", email="jane@example.org")  # has the email identity

    message = receive(build_email(sender="jane@example.org", in_reply_to=f"<{OUR_REPLY_ID}>", subject="Re: Chat"))

    assert message.conversation_id == chat.pk and message.author_contact_id == owner.pk
    assert not chat.contact.identities.filter(kind="email").exists()


def test_a_chat_contact_with_an_email_identity_is_not_given_a_second_one(chat):
    ContactIdentity.objects.create(contact=chat.contact, kind="email", address="jane.work@example.org")

    message = receive(build_email(sender="jane@example.org", in_reply_to=f"<{OUR_REPLY_ID}>", subject="Re: Chat"))

    assert message.conversation_id == chat.pk and message.author_contact_id != chat.contact_id
    assert list(chat.contact.identities.filter(kind="email").values_list("address", flat=True)) == ["jane.work@example.org"]


def test_a_reply_token_of_a_merged_conversation_lands_in_the_target(chat):
    target = TicketFactory(conversation__inbox=chat.inbox, conversation__contact=chat.contact).conversation
    conversation_merge(source=chat.ticket, target=target.ticket, by=UserFactory())

    token = reply_token(chat.pk)
    message = receive(build_email(sender="jane@example.org", to=f"chat+{token}@acme.test", subject="Hello"),
                      recipient=f"chat+{token}@acme.test")

    assert message.conversation_id == target.pk
    assert Conversation.objects.get(pk=chat.pk).messages.count() == 1  # only the "merged into" line
