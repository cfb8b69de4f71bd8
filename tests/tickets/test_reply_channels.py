"""The agent chooses the reply channel; the header shows every identity and the SMS consent;
opening a conversation sends the customer a "seen" receipt."""
from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.utils import timezone

from conversations.models import Channel, ContactIdentity, Conversation, Message
from conversations.realtime import customer_group
from conversations.selectors import reply_channels
from tests.clients import api_client_for
from tests.factories import (
    ContactFactory,
    EmailChannelFactory,
    InboxFactory,
    MessageFactory,
    SmsChannelFactory,
    TicketFactory,
    UserFactory,
    VisitorFactory,
    WebChatChannelFactory,
)

pytestmark = pytest.mark.django_db

FRAGMENT = {"HTTP_X_DESK_FRAGMENT": "1"}
PHONE = "+14155550123"
STOPPED_AT = datetime(2026, 3, 2, 18, 30, tzinfo=UTC)


@pytest.fixture
def agent():
    return UserFactory(username="alice", first_name="Alice")


@pytest.fixture
def inbox(agent):
    """A web chat inbox that can also answer by email and by SMS."""
    inbox = WebChatChannelFactory(inbox__name="Website chat").inbox
    EmailChannelFactory(inbox=inbox, address="chat@acme.test")
    SmsChannelFactory(inbox=inbox, phone_number="+14155550100")
    inbox.members.add(agent)
    return inbox


@pytest.fixture
def conversation(inbox):
    contact = ContactFactory(name="Jane Roe", email="jane@example.org")
    ContactIdentity.objects.create(contact=contact, kind="phone", address=PHONE)
    ContactIdentity.objects.create(contact=contact, kind="external", address="user-42")
    conversation = TicketFactory(conversation__inbox=inbox, conversation__contact=contact).conversation
    VisitorFactory(channel=inbox.webchat_channel, conversation=conversation, contact=contact, name="Jane",
                   email="jane@example.org", external_user_id="user-42")
    MessageFactory(conversation=conversation, channel=Channel.WEBCHAT, author_contact=contact, text="Hi from the chat")
    MessageFactory(conversation=conversation, channel=Channel.SMS, author_contact=contact, from_address=PHONE, text="by text")
    return conversation


def opt_out(address: str = PHONE) -> None:
    ContactIdentity.objects.filter(kind="phone", address=address).update(
        sms_opted_out_at=STOPPED_AT, sms_consent_keyword="STOP", sms_consent_changed_at=STOPPED_AT)


def summary(conversation) -> list[tuple[str, str, bool]]:
    return [(c.channel, c.address, c.available) for c in reply_channels(Conversation.objects.get(pk=conversation.pk))]


# --- The selector ---------------------------------------------------------------------------


def test_every_configured_channel_that_reaches_the_customer_the_latest_customer_channel_first(conversation):
    assert summary(conversation) == [("sms", PHONE, True), ("email", "jane@example.org", True), ("webchat", "Jane", True)]

    MessageFactory(conversation=conversation, channel=Channel.EMAIL, text="by mail")
    assert summary(conversation)[0] == ("email", "jane@example.org", True)
    # Agent replies do not move the default: it follows the customer.
    MessageFactory(conversation=conversation, kind=Message.Kind.OUTBOUND, channel=Channel.WEBCHAT, text="answer")
    assert summary(conversation)[0] == ("email", "jane@example.org", True)


def test_opted_out_number_is_listed_unavailable_with_the_reason(conversation):
    opt_out()

    channels = reply_channels(Conversation.objects.get(pk=conversation.pk))

    assert [(c.channel, c.available) for c in channels] == [("email", True), ("webchat", True), ("sms", False)]
    assert channels[2].reason.startswith(f"{PHONE} opted out of SMS (STOP, 2026-03-02")
    assert "until the customer texts START" in channels[2].reason


def test_channels_need_both_the_inbox_config_and_a_way_to_reach_the_customer(agent):
    bare = TicketFactory(conversation__inbox=InboxFactory()).conversation
    assert summary(bare) == []  # an inbox without any channel config

    inbox = WebChatChannelFactory().inbox
    EmailChannelFactory(inbox=inbox)
    SmsChannelFactory(inbox=inbox)
    no_email = ContactFactory(email="")
    chat = TicketFactory(conversation__inbox=inbox, conversation__contact=no_email).conversation
    assert summary(chat) == []  # no email, no phone identity, no visitor
    no_email.email = "pre-chat@example.org"  # an unverified pre-chat email is still an address to write to
    no_email.save()
    assert summary(chat) == [("email", "pre-chat@example.org", True)]


# --- The API --------------------------------------------------------------------------------


def test_api_lists_the_reply_channels(agent, conversation):
    opt_out()

    body = api_client_for(agent).get(f"/api/v1/conversations/{conversation.pk}/reply-channels/").json()

    assert [(c["channel"], c["available"]) for c in body] == [("email", True), ("webchat", True), ("sms", False)]
    assert body[0] == {"channel": "email", "label": "Email", "address": "jane@example.org", "available": True, "reason": ""}
    assert "opted out of SMS" in body[2]["reason"]


def test_api_reply_without_a_channel_goes_where_the_customer_last_wrote(agent, conversation, tasks,
                                                                        django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client_for(agent).post(f"/api/v1/conversations/{conversation.pk}/reply/", {"text": "Hi"}, format="json")

    assert response.status_code == 201
    assert response.json()["channel"] == "sms"


@pytest.mark.parametrize("setup, channel, reason", [
    (opt_out, "sms", f"{PHONE} opted out of SMS (STOP, 2026-03-02"),
    (lambda: Conversation.objects.get().visitors.update(conversation=None), "webchat",
     "This conversation cannot be answered by Web chat: the inbox has no web chat or the conversation no chat visitor."),
])
def test_api_reply_on_a_channel_that_cannot_reach_the_customer_is_400_with_the_reason(
        agent, conversation, tasks, django_capture_on_commit_callbacks, setup, channel, reason):
    setup()
    before = Message.objects.count()

    with django_capture_on_commit_callbacks(execute=True):
        response = api_client_for(agent).post(f"/api/v1/conversations/{conversation.pk}/reply/",
                                              {"text": "Hi", "channel": channel}, format="json")

    assert response.status_code == 400
    assert response.json()["detail"].startswith(reason)
    assert Message.objects.count() == before and tasks.sent == []


def test_api_reply_with_no_channel_at_all_says_so(agent, tasks):
    inbox = InboxFactory()
    inbox.members.add(agent)
    ticket = TicketFactory(conversation__inbox=inbox)

    response = api_client_for(agent).post(f"/api/v1/conversations/{ticket.pk}/reply/", {"text": "Hi"}, format="json")

    assert response.status_code == 400
    assert response.json() == {"detail": "No channel to reply on."}


# --- The dashboard --------------------------------------------------------------------------


def html(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


def test_header_shows_every_identity_and_the_sms_consent(client, agent, conversation):
    opt_out()
    client.force_login(agent)

    page = html(client.get(f"/c/{conversation.pk}/timeline"))

    identities = re.search(r'<ul class="identities" data-testid="identities".*?</ul>', page).group(0)
    assert '<span class="id-kind">Email</span> jane@example.org' in identities
    assert '<span class="id-kind">Site user id</span> user-42' in identities
    assert ('<span class="id-kind">Phone</span> +14155550123 <span class="consent-warning" data-testid="sms-consent" '
            'role="note">SMS opted out (STOP, 2026-03-02)</span>') in identities
    assert '<span class="id-kind">Web chat visitor</span> Jane · jane@example.org <span class="muted">(unverified)</span>' in identities
    assert '<div class="typing" id="typing" data-testid="typing" role="status" aria-live="polite" hidden></div>' in page


def test_a_number_with_consent_shows_no_warning(client, agent, conversation):
    client.force_login(agent)

    page = html(client.get(f"/c/{conversation.pk}/timeline"))

    assert "opted out" not in page and 'data-testid="sms-consent"' not in page


def test_composer_offers_the_channels_with_the_reason_for_an_unavailable_one(client, agent, conversation):
    opt_out()
    client.force_login(agent)

    page = html(client.get(f"/c/{conversation.pk}/timeline"))

    select = re.search(r'<select name="channel" data-testid="reply-channel">(.*?)</select>', page).group(1)
    assert re.findall(r'<option value="(\w+)"( disabled)?( selected)?>', select) == [
        ("email", "", " selected"), ("webchat", "", ""), ("sms", " disabled", "")]
    assert "SMS · +14155550123 (unavailable)" in select
    assert re.search(r'data-testid="reply-channel-reason">\+14155550123 opted out of SMS \(STOP, 2026-03-02', page)
    assert 'data-testid="reply-text"' in page and 'data-testid="reply-send"' in page


def test_dashboard_reply_goes_out_on_the_chosen_channel(client, agent, conversation, tasks, django_capture_on_commit_callbacks):
    client.force_login(agent)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/c/{conversation.pk}/reply", {"text": "Answering by email", "channel": "email"}, **FRAGMENT)

    assert response.status_code == 200
    reply = Message.objects.get(kind=Message.Kind.OUTBOUND)
    assert (reply.channel, reply.text) == ("email", "Answering by email")
    assert len(tasks.sent) == 1


def test_dashboard_reply_to_an_opted_out_number_is_refused_with_the_reason(client, agent, conversation, tasks):
    opt_out()
    client.force_login(agent)

    response = client.post(f"/c/{conversation.pk}/reply", {"text": "Hi", "channel": "sms"}, **FRAGMENT)

    assert response.status_code == 400
    assert response.content.decode().startswith(f"{PHONE} opted out of SMS (STOP, 2026-03-02")
    assert not Message.objects.filter(kind=Message.Kind.OUTBOUND).exists() and tasks.sent == []


def test_a_note_ignores_the_reply_channel(client, agent, conversation, tasks):
    opt_out()
    client.force_login(agent)

    response = client.post(f"/c/{conversation.pk}/note", {"text": "Called her", "channel": "sms"}, **FRAGMENT)

    assert response.status_code == 200
    assert Message.objects.get(kind=Message.Kind.NOTE).channel == Channel.INTERNAL


def test_timeline_query_count_with_every_channel(client, agent, conversation, django_assert_num_queries):
    for _ in range(10):
        MessageFactory(conversation=conversation, channel=Channel.SMS, author_contact=conversation.contact, from_address=PHONE)
    client.force_login(agent)

    # 1 session, 2 user, 3 manager check, 4 the agent's inbox ids, 5 the ticket with its
    # conversation, contact, inbox and the inbox's email/SMS/web chat configs (outer joins),
    # 6 the inbox's agents, 7 the contact's identities, 8 the conversation's visitors,
    # 9 the SMS recipient (latest texting number), 10 its consent (opted-out identity),
    # 11 the channel of the latest customer message, 12 the SLA clocks with their calendars
    # (panel; their events are a prefetch that only runs when there are clocks), 13 the
    # ticket's tags (header), 14 the messages with their authors, 15 their attachments,
    # 16 the teams (the header's transfer select).
    with django_assert_num_queries(16):
        response = client.get(f"/c/{conversation.pk}/timeline")

    assert html(response).count('<li class="msg ') == 12


# --- Seen -----------------------------------------------------------------------------------


def test_opening_the_conversation_records_seen_and_tells_the_widget(client, agent, conversation,
                                                                    django_capture_on_commit_callbacks):
    layer = get_channel_layer()
    widget = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(customer_group(conversation.pk), widget)
    client.force_login(agent)
    before = timezone.now()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/c/{conversation.pk}/seen")

    assert response.status_code == 204
    seen_at = Conversation.objects.get(pk=conversation.pk).agent_last_seen_at
    assert seen_at is not None and seen_at >= before
    assert async_to_sync(layer.receive)(widget) == {"type": "widget.seen", "agent_last_seen_at": seen_at.isoformat()}


def test_seen_needs_access_and_a_post(client, conversation):
    stranger = UserFactory()
    InboxFactory().members.add(stranger)
    client.force_login(stranger)

    assert client.post(f"/c/{conversation.pk}/seen").status_code == 404
    assert client.get(f"/c/{conversation.pk}/seen").status_code == 405
    assert Conversation.objects.get(pk=conversation.pk).agent_last_seen_at is None
