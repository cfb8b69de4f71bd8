"""Merging two conversations: one timeline, history interleaved, the source closed and pointing on."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from conversations.models import Attachment, Channel, Conversation, Event, Message
from conversations.services import ApplicationError
from tests.clients import api_client_for, manager_client
from tests.factories import (
    AttachmentFactory,
    ContactFactory,
    EmailChannelFactory,
    InboxFactory,
    MessageFactory,
    TicketFactory,
    UserFactory,
    VisitorFactory,
    WebChatChannelFactory,
)
from tickets.models import Ticket
from tickets.services import conversation_merge

pytestmark = pytest.mark.django_db


@pytest.fixture
def maria():
    return UserFactory(username="maria", first_name="Maria", last_name="Mendes")


@pytest.fixture
def chat_inbox(maria):
    inbox = WebChatChannelFactory(inbox__name="Website chat").inbox
    inbox.members.add(maria)
    return inbox


@pytest.fixture
def email_inbox(maria):
    inbox = EmailChannelFactory(inbox__name="Support").inbox
    inbox.members.add(maria)
    return inbox


@pytest.fixture
def api(maria) -> APIClient:
    return api_client_for(maria)


def at(minutes_ago: float):
    return timezone.now() - timedelta(minutes=minutes_ago)


def message(conversation, minutes_ago: float, **kwargs) -> Message:
    m = MessageFactory(conversation=conversation, **kwargs)
    Message.objects.filter(pk=m.pk).update(created_at=at(minutes_ago))
    return m


@pytest.fixture
def pair(chat_inbox, email_inbox):
    """A chat (source) and an email conversation (target) of the same customer, interleaved in time."""
    jane = ContactFactory(name="Jane Roe", email="jane@example.org")
    chat = TicketFactory(conversation__inbox=chat_inbox, conversation__contact=jane, conversation__subject="Chat").conversation
    mail = TicketFactory(conversation__inbox=email_inbox, conversation__contact=jane, conversation__subject="Mail").conversation
    messages = {
        "mail1": message(mail, 50, channel=Channel.EMAIL, text="mail one"),
        "chat1": message(chat, 40, channel=Channel.WEBCHAT, text="chat one"),
        "mail2": message(mail, 30, kind=Message.Kind.OUTBOUND, channel=Channel.EMAIL, text="mail reply",
                         delivery_status=Message.DeliveryStatus.SENT),
        "chat2": message(chat, 20, channel=Channel.WEBCHAT, text="chat two, still waiting"),
    }
    AttachmentFactory(message=messages["chat2"], filename="photo.pdf")
    Conversation.objects.filter(pk=chat.pk).update(message_count=2)
    Conversation.objects.filter(pk=mail.pk).update(message_count=2)
    visitor = VisitorFactory(channel=chat_inbox.webchat_channel, conversation=chat, contact=jane)
    return chat, mail, messages, visitor


def test_merge_interleaves_messages_and_recomputes_the_target(pair, maria, django_capture_on_commit_callbacks):
    chat, mail, messages, visitor = pair
    before = Event.objects.count()

    with django_capture_on_commit_callbacks(execute=True):
        conversation_merge(source=chat.ticket, target=mail.ticket, by=maria)

    timeline = list(Message.objects.filter(conversation=mail).order_by("created_at", "id"))
    assert [m.text for m in timeline] == ["mail one", "chat one", "mail reply", "chat two, still waiting",
                                          f"Maria Mendes merged #{chat.pk} into this conversation: 2 messages."]
    assert Attachment.objects.select_related("message").get(filename="photo.pdf").message.conversation_id == mail.pk
    mail.refresh_from_db()
    assert mail.message_count == 5
    assert mail.last_message_preview == "chat two, still waiting" and mail.last_message_channel == Channel.WEBCHAT
    assert mail.last_message_at == Message.objects.get(pk=messages["chat2"].pk).created_at
    assert mail.waiting_since == mail.last_message_at  # the chat message after the mail reply is unanswered
    chat.refresh_from_db()
    assert chat.merged_into_id == mail.pk and chat.merged_at is not None
    assert [m.text for m in chat.messages.all()] == [f"Maria Mendes merged this conversation into #{mail.pk}."]
    assert chat.message_count == 1 and chat.last_message_at is None
    assert Ticket.objects.get(pk=chat.pk).status == Ticket.Status.CLOSED
    visitor.refresh_from_db()
    assert visitor.conversation_id == mail.pk
    events = set(Event.objects.filter(id__gt=before).values_list("type", "inbox_id", "conversation_id"))
    assert events == {("conversation.updated", chat.inbox_id, chat.pk), ("conversation.updated", mail.inbox_id, mail.pk)}


def test_merge_refusals(pair, maria):
    chat, mail, *_ = pair
    third = TicketFactory(conversation__inbox=mail.inbox).conversation

    with pytest.raises(ApplicationError, match="into itself"):
        conversation_merge(source=chat.ticket, target=chat.ticket, by=maria)
    conversation_merge(source=third.ticket, target=mail.ticket, by=maria)
    with pytest.raises(ApplicationError, match=f"#{third.pk} was merged into #{mail.pk}"):
        conversation_merge(source=chat.ticket, target=Ticket.objects.get(pk=third.pk), by=maria)
    with pytest.raises(ApplicationError, match="already merged"):
        conversation_merge(source=Ticket.objects.get(pk=third.pk), target=chat.ticket, by=maria)
    assert Conversation.objects.get(pk=chat.pk).merged_into_id is None
    assert chat.messages.count() == 2


# --- API ------------------------------------------------------------------------------------


def test_api_merge_and_the_merged_conversation_points_on(api, pair, django_capture_on_commit_callbacks):
    chat, mail, *_ = pair

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/api/v1/conversations/{chat.pk}/merge/", {"into": mail.pk}, format="json")

    assert response.status_code == 200, response.json()
    assert response.json()["id"] == mail.pk and response.json()["message_count"] == 5
    # The merged conversation still answers (old links), saying where its messages are now.
    detail = api.get(f"/api/v1/conversations/{chat.pk}/").json()
    assert detail["merged_into"] == mail.pk and detail["status"] == "closed"
    assert api.get(f"/api/v1/conversations/{mail.pk}/").json()["merged_into"] is None


def test_api_merge_needs_both_conversations_in_the_agents_inboxes(api, pair):
    chat, mail, *_ = pair
    elsewhere = TicketFactory(conversation__inbox=InboxFactory()).conversation

    for source, target in ((chat, elsewhere), (elsewhere, chat)):
        response = api.post(f"/api/v1/conversations/{source.pk}/merge/", {"into": target.pk}, format="json")
        assert response.status_code == 404
    outsider = UserFactory()
    outsider.inboxes.add(mail.inbox)  # sees the target, not the source
    assert api_client_for(outsider).post(f"/api/v1/conversations/{chat.pk}/merge/", {"into": mail.pk},
                                         format="json").status_code == 404
    assert not Conversation.objects.filter(merged_into__isnull=False).exists()
    assert not Message.objects.filter(kind=Message.Kind.SYSTEM).exists()
    assert manager_client().post(f"/api/v1/conversations/{chat.pk}/merge/", {"into": elsewhere.pk},
                                 format="json").status_code == 200


def test_api_refuses_self_merge(api, pair):
    chat, *_ = pair

    response = api.post(f"/api/v1/conversations/{chat.pk}/merge/", {"into": chat.pk}, format="json")

    assert response.status_code == 400
    assert response.json() == {"detail": "A conversation cannot be merged into itself."}


# --- Dashboard ------------------------------------------------------------------------------


def test_dashboard_merge_then_old_links_lead_to_the_target(client, maria, pair):
    chat, mail, *_ = pair
    client.force_login(maria)

    page = client.get(f"/c/{chat.pk}/timeline").content.decode()
    assert f'action="/c/{chat.pk}/merge"' in page
    response = client.post(f"/c/{chat.pk}/merge", {"into": f"#{mail.pk}"}, HTTP_X_DESK_FRAGMENT="1")

    assert response.status_code == 200
    assert f'data-conversation-id="{mail.pk}"' in response.content.decode()  # the page switches to the target
    assert "chat two, still waiting" in response.content.decode()
    page_redirect = client.get(f"/c/{chat.pk}/?view=all")
    assert page_redirect.status_code == 302 and page_redirect["Location"] == f"/c/{mail.pk}/?view=all"
    fragment_redirect = client.get(f"/c/{chat.pk}/timeline")
    assert fragment_redirect.status_code == 302 and fragment_redirect["Location"] == f"/c/{mail.pk}/timeline"


def test_dashboard_merge_refusals(client, maria, pair):
    chat, *_ = pair
    client.force_login(maria)
    elsewhere = TicketFactory(conversation__inbox=InboxFactory()).conversation

    assert client.post(f"/c/{chat.pk}/merge", {"into": str(elsewhere.pk)}, HTTP_X_DESK_FRAGMENT="1").status_code == 404
    refused = client.post(f"/c/{chat.pk}/merge", {"into": str(chat.pk)}, HTTP_X_DESK_FRAGMENT="1")
    assert refused.status_code == 400 and refused.content.decode() == "A conversation cannot be merged into itself."
    assert client.post(f"/c/{chat.pk}/merge", {"into": ""}, HTTP_X_DESK_FRAGMENT="1").status_code == 400
    assert not Conversation.objects.filter(merged_into__isnull=False).exists()
