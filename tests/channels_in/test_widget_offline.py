"""Offline continuity: a web chat reply to a visitor who left goes by email, and their emailed
answer comes back into the same conversation."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core import mail
from django.utils import timezone

from channels_in import widget
from channels_in.models import Visitor
from conversations.models import Channel, Conversation, Message
from conversations.services import reply_create
from conversations.threading import reply_token_conversation_id
from tests.channels_in.test_widget_http import layer_receive, make_webchat
from tests.factories import UserFactory
from tests.fakes.desk import SUPPORT, post_inbound_email

pytestmark = pytest.mark.django_db


def chat_with(text: str, **session: object) -> tuple[Visitor, Conversation]:
    chat = make_webchat(email_address=SUPPORT)
    visitor = widget.visitor_session(channel=chat, **session)
    message, _ = widget.visitor_message_send(visitor=visitor, text=text, client_id=str(uuid.uuid4()))
    return Visitor.objects.get(pk=visitor.pk), message.conversation


def agent_reply(conversation: Conversation, text: str, django_capture_on_commit_callbacks) -> Message:
    with django_capture_on_commit_callbacks(execute=True):
        return reply_create(conversation=conversation, author=UserFactory(first_name="Sam"), text=text, channel=Channel.WEBCHAT)


def test_the_reply_to_an_offline_visitor_goes_by_email_and_the_answer_threads_back(
    client, tasks, django_capture_on_commit_callbacks
) -> None:
    visitor, conversation = chat_with("Is the blue one in stock?", name="Jane", email="jane@example.org")
    # The visitor's socket closed a while ago.
    Visitor.objects.filter(pk=visitor.pk).update(online_until=timezone.now() - timedelta(minutes=5))
    reply = agent_reply(conversation, "Yes, back in stock on Monday.", django_capture_on_commit_callbacks)
    assert tasks.drain() == 1

    [email] = mail.outbox
    assert email.to == ["jane@example.org"]
    assert email.body == "Yes, back in stock on Monday."
    assert email.extra_headers["Message-ID"] == f"<{reply.rfc_message_id}>"
    [reply_to] = email.reply_to
    token = reply_to.partition("+")[2].partition("@")[0]
    assert reply_token_conversation_id(token) == conversation.pk
    reply.refresh_from_db()
    assert reply.delivery_status == "sent"
    assert reply.notices == ["The visitor was offline: sent by email to jane@example.org."]

    # Jane answers from her phone's mail app, days later.
    with django_capture_on_commit_callbacks(execute=True):
        response = post_inbound_email(
            client, sender="Jane <jane@example.org>", subject=email.subject, text="Great, please hold one for me.",
            in_reply_to=f"<{reply.rfc_message_id}>", references=f"<{reply.rfc_message_id}>",
        )
    assert response.status_code == 200
    tasks.drain()
    answer = Message.objects.get(kind=Message.Kind.INBOUND, channel=Channel.EMAIL)
    assert answer.conversation_id == conversation.pk
    assert answer.thread_rule == Message.ThreadRule.IN_REPLY_TO
    # The visitor sees it in the widget too when they come back.
    texts = [m.text_display for m in widget.visitor_messages(visitor=visitor)]
    assert texts[-1].startswith("Great, please hold one for me.")


def test_an_online_visitor_gets_the_reply_in_the_widget_only(tasks, django_capture_on_commit_callbacks) -> None:
    visitor, conversation = chat_with("Is the blue one in stock?", email="jane@example.org")
    widget.visitor_heartbeat(visitor_id=visitor.pk)
    layer = get_channel_layer()
    listener = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(f"webchat.{conversation.pk}", listener)
    reply = agent_reply(conversation, "Yes!", django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        tasks.drain()
    pushed = layer_receive(listener)
    assert pushed["type"] == "widget.message" and pushed["message"]["id"] == reply.pk
    assert pushed["message"]["author_name"] == "Sam" and pushed["message"]["status"] == "sent"
    assert mail.outbox == []
    reply.refresh_from_db()
    assert reply.delivery_status == "sent" and reply.external_id == f"webchat-{reply.pk}" and reply.notices == []


def test_an_offline_visitor_without_email_just_finds_the_reply_later(tasks, django_capture_on_commit_callbacks) -> None:
    visitor, conversation = chat_with("hello?")
    reply = agent_reply(conversation, "Hi there", django_capture_on_commit_callbacks)
    tasks.drain()
    assert mail.outbox == []
    reply.refresh_from_db()
    assert reply.delivery_status == "sent"
    assert [m.text for m in widget.visitor_messages(visitor=visitor)] == ["hello?", "Hi there"]
