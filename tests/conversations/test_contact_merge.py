"""Merging two contacts: one customer across channels, with the history kept and recorded."""
from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from conversations.models import Contact, ContactIdentity, Conversation, Event, Message
from conversations.services import ApplicationError, contact_merge
from tests.clients import api_client_for, manager_client
from tests.factories import (
    ContactFactory,
    InboxFactory,
    MessageFactory,
    TicketFactory,
    UserFactory,
    VisitorFactory,
    WebChatChannelFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def maria():
    return UserFactory(username="maria", first_name="Maria", last_name="Mendes")


@pytest.fixture
def inbox(maria):
    inbox = WebChatChannelFactory(inbox__name="Website chat").inbox
    inbox.members.add(maria)
    return inbox


@pytest.fixture
def api(maria) -> APIClient:
    return api_client_for(maria)


@pytest.fixture
def chat_visitor(inbox):
    """A web chat contact: a visitor who left only a name and an unverified email."""
    contact = ContactFactory(name="", email="jane@example.org", identity=None)
    ContactIdentity.objects.filter(contact=contact).delete()  # the pre-chat email proves nothing
    ContactIdentity.objects.create(contact=contact, kind="visitor", address="v-123")
    ticket = TicketFactory(conversation__inbox=inbox, conversation__contact=contact, conversation__subject="Chat")
    MessageFactory(conversation=ticket.conversation, channel="webchat", author_contact=contact, text="Hi from the widget")
    VisitorFactory(channel=inbox.webchat_channel, conversation=ticket.conversation, contact=contact)
    return contact


@pytest.fixture
def email_customer(inbox):
    contact = ContactFactory(name="Jane Roe", email="jane.roe@example.org", phone="")
    ContactIdentity.objects.create(contact=contact, kind="phone", address="+14155550123")
    TicketFactory(conversation__inbox=inbox, conversation__contact=contact, conversation__subject="Email")
    return contact


def test_merge_moves_identities_conversations_visitors_and_authorship(chat_visitor, email_customer, maria,
                                                                      django_capture_on_commit_callbacks):
    source, target = chat_visitor, email_customer
    moved = Conversation.objects.get(contact=source)
    kept = Conversation.objects.get(contact=target)
    before = Event.objects.count()

    with django_capture_on_commit_callbacks(execute=True):
        result = contact_merge(source=source, target=target, by=maria)

    assert result.pk == target.pk
    source.refresh_from_db()
    target.refresh_from_db()
    assert source.merged_into_id == target.pk and source.merged_at is not None
    assert not source.identities.exists() and not source.conversations.exists() and not source.visitors.exists()
    assert sorted(target.identities.values_list("kind", "address")) == [
        ("email", "jane.roe@example.org"), ("phone", "+14155550123"), ("visitor", "v-123")]
    assert set(target.conversations.values_list("pk", flat=True)) == {moved.pk, kept.pk}
    assert target.visitors.get().conversation_id == moved.pk
    # The chat message now names the surviving contact as its author; nothing was lost.
    chat = Message.objects.get(text="Hi from the widget")
    assert chat.author_contact_id == target.pk and chat.conversation_id == moved.pk
    # The target keeps its own name and email; it had no phone, and the source none to give.
    assert (target.name, target.email, target.phone) == ("Jane Roe", "jane.roe@example.org", "")
    # The moved conversation records who merged what, and the dashboards are told.
    line = moved.messages.get(kind=Message.Kind.SYSTEM)
    assert line.text == f"Maria Mendes merged contact jane@example.org (#{source.pk}) into Jane Roe (#{target.pk})."
    assert line.author_user == maria
    assert list(Event.objects.filter(id__gt=before).values_list("type", "conversation_id")) == [("conversation.updated", moved.pk)]
    assert Conversation.objects.get(pk=moved.pk).message_count == 1  # the system line (the factory message is not counted)


def test_empty_fields_of_the_target_are_filled_from_the_source(inbox, maria):
    source = ContactFactory(name="Jane Roe", email="jane@example.org", phone="+14155550123")
    target = ContactFactory(name="", email="", phone="")

    contact_merge(source=source, target=target, by=maria)

    target.refresh_from_db()
    assert (target.name, target.email, target.phone) == ("Jane Roe", "jane@example.org", "+14155550123")


def test_refuses_merging_into_itself_or_into_a_merged_contact(inbox, maria):
    jane, june, joan = ContactFactory(), ContactFactory(), ContactFactory()
    contact_merge(source=june, target=joan, by=maria)

    with pytest.raises(ApplicationError, match="into itself"):
        contact_merge(source=jane, target=jane, by=maria)
    with pytest.raises(ApplicationError, match=f"merged into contact #{joan.pk}"):
        contact_merge(source=jane, target=june, by=maria)
    with pytest.raises(ApplicationError, match="already merged"):
        contact_merge(source=june, target=jane, by=maria)
    assert Contact.objects.get(pk=jane.pk).merged_into_id is None


# --- API ------------------------------------------------------------------------------------


def test_api_merge(api, chat_visitor, email_customer, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/api/v1/contacts/{chat_visitor.pk}/merge/", {"into": email_customer.pk}, format="json")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["id"] == email_customer.pk and body["merged_into"] is None
    assert {i["kind"] for i in body["identities"]} == {"email", "phone", "visitor"}
    assert len(body["conversations"]) == 2
    # The merged contact now lives on only as a pointer (managers still see its row).
    merged = manager_client().get(f"/api/v1/contacts/{chat_visitor.pk}/").json()
    assert merged["merged_into"] == email_customer.pk and merged["identities"] == []


def test_api_merge_needs_both_contacts_in_the_agents_inboxes(api, chat_visitor):
    elsewhere = ContactFactory()
    TicketFactory(conversation__inbox=InboxFactory(), conversation__contact=elsewhere)

    assert api.post(f"/api/v1/contacts/{chat_visitor.pk}/merge/", {"into": elsewhere.pk}, format="json").status_code == 404
    assert api.post(f"/api/v1/contacts/{elsewhere.pk}/merge/", {"into": chat_visitor.pk}, format="json").status_code == 404
    assert not Contact.objects.filter(merged_into__isnull=False).exists()
    assert not Message.objects.filter(kind=Message.Kind.SYSTEM).exists()


def test_api_refuses_self_merge_with_the_reason(api, chat_visitor):
    response = api.post(f"/api/v1/contacts/{chat_visitor.pk}/merge/", {"into": chat_visitor.pk}, format="json")

    assert response.status_code == 400
    assert response.json() == {"detail": "A contact cannot be merged into itself."}
    assert api.post(f"/api/v1/contacts/{chat_visitor.pk}/merge/", {}, format="json").status_code == 400


# --- Dashboard ------------------------------------------------------------------------------


def test_dashboard_merges_the_conversations_contact(client, maria, chat_visitor, email_customer):
    client.force_login(maria)
    conversation = Conversation.objects.get(contact=chat_visitor)

    page = client.get(f"/c/{conversation.pk}/timeline").content.decode()
    assert f'action="/c/{conversation.pk}/merge-contact"' in page

    response = client.post(f"/c/{conversation.pk}/merge-contact", {"into": str(email_customer.pk)}, HTTP_X_DESK_FRAGMENT="1")

    assert response.status_code == 200
    assert "Jane Roe" in response.content.decode()
    assert Conversation.objects.get(pk=conversation.pk).contact_id == email_customer.pk


def test_dashboard_contact_merge_refusals(client, maria, chat_visitor):
    client.force_login(maria)
    conversation = Conversation.objects.get(contact=chat_visitor)
    stranger = ContactFactory()
    TicketFactory(conversation__inbox=InboxFactory(), conversation__contact=stranger)

    url = f"/c/{conversation.pk}/merge-contact"
    assert client.post(url, {"into": str(stranger.pk)}, HTTP_X_DESK_FRAGMENT="1").status_code == 404
    refused = client.post(url, {"into": str(chat_visitor.pk)}, HTTP_X_DESK_FRAGMENT="1")
    assert refused.status_code == 400 and refused.content.decode() == "A contact cannot be merged into itself."
    assert client.post(url, {"into": "jane"}, HTTP_X_DESK_FRAGMENT="1").status_code == 400
    assert not Contact.objects.filter(merged_into__isnull=False).exists()
