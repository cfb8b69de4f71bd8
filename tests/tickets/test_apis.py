"""REST API v1 for conversations, timelines, replies and ticket state (tickets/apis.py)."""
from __future__ import annotations

import base64
from datetime import timedelta
from urllib.parse import urlencode, urlsplit

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from conversations.models import Channel, ContactIdentity, Event, Message
from helpdesk.roles import MANAGERS_GROUP
from tests.clients import api_client_for, manager_client
from tests.factories import (
    AttachmentFactory,
    ContactFactory,
    EmailChannelFactory,
    InboxFactory,
    MessageFactory,
    SmsChannelFactory,
    TeamFactory,
    TicketFactory,
    UserFactory,
)
from tickets.models import Tag, Ticket

pytestmark = pytest.mark.django_db

DELIVER = "channels_in.outbound_deliver"


@pytest.fixture
def inbox():
    # With its email address: replies need a channel the conversation can be answered on.
    return EmailChannelFactory(inbox__name="Billing", inbox__kind=Channel.EMAIL).inbox


@pytest.fixture
def agent(inbox):
    user = UserFactory(first_name="Ada", last_name="Lovelace")
    inbox.members.add(user)
    return user


@pytest.fixture
def api(agent) -> APIClient:
    # A real session per request (not force_authenticate) so every request loads a fresh
    # user, as in production: nothing cached on the user object leaks between requests.
    return api_client_for(agent)


@pytest.fixture
def outsider_api() -> APIClient:
    """An agent of another inbox."""
    outsider = UserFactory()
    InboxFactory().members.add(outsider)
    return api_client_for(outsider)


def ticket_in(inbox, *, minutes_ago: float | None = 1, **kwargs) -> Ticket:
    at = None if minutes_ago is None else timezone.now() - timedelta(minutes=minutes_ago)
    return TicketFactory(conversation__inbox=inbox, conversation__last_message_at=at, **kwargs)


def url(ticket: Ticket, action: str = "") -> str:
    return f"/api/v1/conversations/{ticket.pk}/" + (f"{action}/" if action else "")


def ids(response) -> list[int]:
    return [row["id"] for row in response.json()["results"]]


# --- Authentication -----------------------------------------------------------------------


def test_anonymous_requests_are_refused():
    response = APIClient().get("/api/v1/conversations/")

    assert response.status_code in (401, 403)
    assert "results" not in response.json()


def test_a_token_from_the_token_endpoint_authenticates(agent, inbox):
    ticket = ticket_in(inbox)
    client = APIClient()

    token = client.post("/api/v1/auth/token/", {"username": agent.username, "password": "pw"}).json()["token"]
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")

    assert token == Token.objects.get(user=agent).key
    assert ids(client.get("/api/v1/conversations/")) == [ticket.pk]


def test_the_token_endpoint_refuses_a_wrong_password(agent):
    response = APIClient().post("/api/v1/auth/token/", {"username": agent.username, "password": "wrong"})

    assert response.status_code == 400
    assert "non_field_errors" in response.json()
    assert not Token.objects.exists()


def test_an_unknown_token_is_refused():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)

    response = client.get("/api/v1/conversations/")

    # 403, not 401: session auth is listed first and has no WWW-Authenticate challenge.
    assert response.status_code in (401, 403)
    assert response.json() == {"detail": "Invalid token."}


def test_session_writes_need_the_csrf_token_token_writes_do_not(agent, inbox, django_capture_on_commit_callbacks):
    ticket = ticket_in(inbox)
    session = APIClient(enforce_csrf_checks=True)
    session.force_login(agent)
    token = APIClient(enforce_csrf_checks=True)
    token.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=agent).key}")

    refused = session.post(url(ticket, "notes"), {"text": "hi"}, format="json")
    with django_capture_on_commit_callbacks(execute=True):
        accepted = token.post(url(ticket, "notes"), {"text": "hi"}, format="json")

    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    assert accepted.status_code == 201
    assert Message.objects.count() == 1


# --- Conversation list ----------------------------------------------------------------------


def test_list_row_shape(api, agent, inbox):
    team = TeamFactory(name="Tier 2")
    contact = ContactFactory(name="Jane Roe", email="jane@example.org", phone="+15550001")
    ticket = ticket_in(inbox, conversation__contact=contact, conversation__subject="Refund please",
                       conversation__last_message_preview="Where is my refund?", conversation__last_message_channel="email",
                       conversation__message_count=3, assignee=agent, team=team, status=Ticket.Status.OPEN,
                       priority=Ticket.Priority.HIGH)
    conversation = ticket.conversation
    conversation.waiting_since = conversation.last_message_at
    conversation.save()
    ticket.tags.add(Tag.objects.create(name="vip"), Tag.objects.create(name="billing"))

    row = api.get("/api/v1/conversations/").json()["results"][0]

    assert row == {
        "id": ticket.pk,
        "subject": "Refund please",
        "status": "open",
        "priority": "high",
        "inbox": {"id": inbox.pk, "name": "Billing", "kind": "email"},
        "contact": {"id": contact.pk, "name": "Jane Roe", "email": "jane@example.org", "phone": "+15550001"},
        "assignee": {"id": agent.pk, "name": "Ada Lovelace"},
        "team": {"id": team.pk, "name": "Tier 2"},
        "tags": ["billing", "vip"],
        "last_message_at": conversation.last_message_at.isoformat().replace("+00:00", "Z"),
        "last_message_preview": "Where is my refund?",
        "last_message_channel": "email",
        "waiting_since": conversation.waiting_since.isoformat().replace("+00:00", "Z"),
        "message_count": 3,
        "created_at": conversation.created_at.isoformat().replace("+00:00", "Z"),
        "snoozed_at": None,
        "snoozed_until": None,
        "merged_into": None,
        "sla": {"state": "", "due_at": None},
    }


def test_list_shows_only_the_agents_inboxes_and_managers_see_all(api, inbox):
    mine = ticket_in(inbox)
    elsewhere = ticket_in(InboxFactory())

    assert ids(api.get("/api/v1/conversations/")) == [mine.pk]
    assert set(ids(manager_client().get("/api/v1/conversations/"))) == {mine.pk, elsewhere.pk}


def test_list_views_and_filters(api, agent, inbox):
    other_inbox = InboxFactory()
    other_inbox.members.add(agent)
    colleague = UserFactory()
    new = ticket_in(inbox, minutes_ago=1)
    mine = ticket_in(inbox, minutes_ago=2, status=Ticket.Status.OPEN, assignee=agent)
    theirs = ticket_in(inbox, minutes_ago=3, status=Ticket.Status.OPEN, assignee=colleague)
    pending = ticket_in(inbox, minutes_ago=4, status=Ticket.Status.PENDING)
    solved = ticket_in(inbox, minutes_ago=5, status=Ticket.Status.SOLVED)
    sms = ticket_in(other_inbox, minutes_ago=6, conversation__last_message_channel="sms")

    def listed(query: str) -> list[int]:
        response = api.get("/api/v1/conversations/?" + query)
        assert response.status_code == 200, response.json()
        return ids(response)

    assert listed("") == [new.pk, mine.pk, theirs.pk, pending.pk, sms.pk]
    assert listed("view=mine") == [mine.pk]
    assert listed("view=unassigned") == [new.pk, pending.pk, sms.pk]
    assert listed("view=pending") == [pending.pk]
    assert listed("view=solved") == [solved.pk]
    assert listed("view=all") == [new.pk, mine.pk, theirs.pk, pending.pk, solved.pk, sms.pk]
    assert listed("view=all&status=solved") == [solved.pk]
    assert listed(f"inbox={other_inbox.pk}") == [sms.pk]
    assert listed(f"assignee={colleague.pk}") == [theirs.pk]
    assert listed("channel=sms") == [sms.pk]


@pytest.mark.parametrize("query, field", [("view=everything", "view"), ("status=lost", "status"),
                                          ("inbox=abc", "inbox"), ("channel=fax", "channel")])
def test_list_rejects_bad_filters_with_the_reason(api, query, field):
    response = api.get("/api/v1/conversations/?" + query)

    assert response.status_code == 400
    assert list(response.json()) == [field]


def test_list_cursor_pages_every_row_once_despite_ties_and_nulls(api, inbox):
    now = timezone.now()
    tie = now - timedelta(minutes=5)
    tickets = [ticket_in(inbox, minutes_ago=1)]
    tickets += [TicketFactory(conversation__inbox=inbox, conversation__last_message_at=tie) for _ in range(3)]
    tickets += [ticket_in(inbox, minutes_ago=10)]
    tickets += [ticket_in(inbox, minutes_ago=None) for _ in range(3)]  # no message yet
    # The selector's order: newest activity first, ties by id; NULLs where the database
    # sorts them in DESC order (first on PostgreSQL, last on SQLite).
    nulls_first = connection.features.nulls_order_largest
    expected = [t.pk for t in sorted(tickets, key=lambda t: ((t.conversation.last_message_at is None) != nulls_first,
                                                               -(t.conversation.last_message_at or now).timestamp(),
                                                               -t.pk))]
    assert expected == ids(api.get("/api/v1/conversations/?page_size=100"))

    pages, link = [], "/api/v1/conversations/?page_size=3"
    while link:
        body = api.get(link).json()
        pages.append([row["id"] for row in body["results"]])
        link = body["next"]
    assert [pk for page in pages for pk in page] == expected
    assert [len(page) for page in pages] == [3, 3, 2]

    # And back again from the last page, through the previous links.
    back, link = [], body["previous"]
    while link:
        body = api.get(link).json()
        back.append([row["id"] for row in body["results"]])
        link = body["previous"]
    assert back == [pages[1], pages[0]]


def test_list_cursor_is_stable_when_new_activity_arrives(api, inbox):
    older = [ticket_in(inbox, minutes_ago=m) for m in (1, 2, 3, 4)]
    first = api.get("/api/v1/conversations/?page_size=2").json()
    ticket_in(inbox, minutes_ago=0)  # lands at the top: must not shift the next page

    second = api.get(first["next"]).json()

    assert [row["id"] for row in second["results"]] == [older[2].pk, older[3].pk]
    assert second["next"] is None


@pytest.mark.parametrize("position", ["not json", '["yesterday", 1]', '["2025-01-01T00:00:00+00:00", "1"]', "[1]"])
def test_list_refuses_a_forged_cursor(api, position):
    cursor = base64.b64encode(urlencode({"p": position}).encode()).decode()

    response = api.get("/api/v1/conversations/", {"cursor": cursor})

    assert response.status_code == 404
    assert response.json() == {"detail": "Invalid cursor"}


@pytest.mark.parametrize("rows", [3, 30])
def test_list_query_count_does_not_grow_with_the_page(api, agent, inbox, django_assert_num_queries, rows):
    team = TeamFactory()
    tag = Tag.objects.create(name="vip")
    for n in range(rows):
        ticket = ticket_in(inbox, minutes_ago=n, assignee=UserFactory(), team=team)
        ticket.tags.add(tag)

    # 1 session, 2 user, 3 manager check (groups), 4 the agent's inbox ids,
    # 5 the page: tickets joined with conversation, contact, inbox, assignee and team,
    # 6 tags of the page (prefetch).
    with django_assert_num_queries(6):
        response = api.get("/api/v1/conversations/?page_size=50")

    assert len(response.json()["results"]) == rows
    assert all(row["tags"] == ["vip"] and row["assignee"] for row in response.json()["results"])


# --- Conversation detail and timeline -------------------------------------------------------


def test_detail(api, inbox):
    ticket = ticket_in(inbox, conversation__subject="Broken printer")

    body = api.get(url(ticket)).json()

    assert body["id"] == ticket.pk and body["subject"] == "Broken printer" and body["status"] == "new"


def test_detail_of_another_inbox_is_404(outsider_api, inbox):
    ticket = ticket_in(inbox)

    assert outsider_api.get(url(ticket)).status_code == 404
    assert outsider_api.get(url(ticket, "messages")).status_code == 404
    assert manager_client().get(url(ticket)).status_code == 200


def test_timeline_shape(api, agent, inbox):
    ticket = ticket_in(inbox)
    conversation = ticket.conversation
    contact = conversation.contact
    inbound = MessageFactory(conversation=conversation, author_contact=contact, from_address=contact.email,
                             to_address="billing@acme.test", subject="Refund", text="Hello\n> old", text_display="Hello",
                             html="<p>Hello</p>", thread_rule=Message.ThreadRule.NEW, notices=["Attachment x.exe was refused."])
    attachment = AttachmentFactory(message=inbound, filename="invoice.pdf", size=8)
    reply = MessageFactory(conversation=conversation, kind=Message.Kind.OUTBOUND, author_user=agent, text="Done",
                           delivery_status=Message.DeliveryStatus.FAILED, delivery_error="550 mailbox unavailable")
    system = MessageFactory(conversation=conversation, kind=Message.Kind.SYSTEM, channel=Channel.INTERNAL, text="Solved.")

    body = api.get(url(ticket, "messages")).json()

    assert body["has_earlier"] is False
    assert [m["id"] for m in body["results"]] == [inbound.pk, reply.pk, system.pk]
    first = body["results"][0]
    assert first == {
        "id": inbound.pk,
        "kind": "inbound",
        "channel": "email",
        "author": {"type": "contact", "id": contact.pk, "name": contact.name},
        "from_address": contact.email,
        "to_address": "billing@acme.test",
        "subject": "Refund",
        "text": "Hello\n> old",
        "text_display": "Hello",
        "has_html": True,
        "thread_rule": "new",
        "delivery_status": "",
        "delivery_error": "",
        "notices": ["Attachment x.exe was refused."],
        "attachments": [{"uuid": str(attachment.uuid), "filename": "invoice.pdf", "content_type": "application/pdf",
                         "size": 8, "url": f"/attachments/{attachment.uuid}/"}],
        "created_at": inbound.created_at.isoformat().replace("+00:00", "Z"),
    }
    assert body["results"][1]["author"] == {"type": "user", "id": agent.pk, "name": "Ada Lovelace"}
    assert body["results"][1]["delivery_status"] == "failed"
    assert body["results"][1]["delivery_error"] == "550 mailbox unavailable"
    assert body["results"][2]["author"] is None


def test_timeline_limit_keeps_the_latest_messages_in_order(api, inbox):
    ticket = ticket_in(inbox)
    messages = [MessageFactory(conversation=ticket.conversation) for _ in range(5)]

    body = api.get(url(ticket, "messages") + "?limit=2").json()

    assert [m["id"] for m in body["results"]] == [messages[3].pk, messages[4].pk]
    assert body["has_earlier"] is True
    assert api.get(url(ticket, "messages") + "?limit=0").status_code == 400


@pytest.mark.parametrize("count", [2, 20])
def test_timeline_query_count_does_not_grow_with_messages(api, inbox, django_assert_num_queries, count):
    ticket = ticket_in(inbox)
    for n in range(count):
        if n % 2:
            message = MessageFactory(conversation=ticket.conversation, kind=Message.Kind.OUTBOUND, author_user=UserFactory())
        else:
            message = MessageFactory(conversation=ticket.conversation, author_contact=ContactFactory())
        AttachmentFactory.create_batch(2, message=message)

    # 1 session, 2 user, 3 manager check, 4 the agent's inbox ids, 5 the ticket (permission),
    # 6 messages joined with their author user and author contact, 7 their attachments.
    with django_assert_num_queries(7):
        body = api.get(url(ticket, "messages")).json()

    assert len(body["results"]) == count
    assert all(len(m["attachments"]) == 2 and m["author"]["name"] for m in body["results"])


# --- Reply and note -------------------------------------------------------------------------


def test_reply_is_queued_and_delivery_enqueued_after_commit(api, agent, inbox, tasks, django_capture_on_commit_callbacks):
    ticket = ticket_in(inbox)

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(url(ticket, "reply"), {"text": "We are on it."}, format="json")
        assert tasks.sent == []  # not before the message is committed

    assert response.status_code == 201
    body = response.json()
    message = Message.objects.get(pk=body["id"])
    assert (message.kind, message.channel, message.text, message.author_user) == ("outbound", "email", "We are on it.", agent)
    assert body["delivery_status"] == "queued"
    assert body["author"] == {"type": "user", "id": agent.pk, "name": "Ada Lovelace"}
    assert tasks.sent == [(DELIVER, (message.pk,))]


def test_reply_over_another_channel(api, inbox, django_capture_on_commit_callbacks):
    SmsChannelFactory(inbox=inbox)
    ticket = ticket_in(inbox)
    ContactIdentity.objects.create(contact=ticket.conversation.contact, kind="phone", address="+14155550123")

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(url(ticket, "reply"), {"text": "Texting you", "channel": "sms"}, format="json")

    assert response.status_code == 201
    assert response.json()["channel"] == "sms"


@pytest.mark.parametrize("payload, reason", [
    ({"text": ""}, {"text": ["This field may not be blank."]}),
    ({}, {"text": ["This field is required."]}),
    ({"text": "   \n"}, {"detail": "A reply needs some text."}),
    ({"text": "hi", "channel": "fax"}, {"channel": ['"fax" is not a valid choice.']}),
    ({"text": "hi", "channel": "internal"}, {"channel": ['"internal" is not a valid choice.']}),
])
def test_bad_reply_is_400_and_changes_nothing(api, inbox, tasks, django_capture_on_commit_callbacks, payload, reason):
    ticket = ticket_in(inbox)

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(url(ticket, "reply"), payload, format="json")

    assert response.status_code == 400
    assert response.json() == reason
    assert not Message.objects.exists() and not Event.objects.exists()
    assert tasks.sent == []


def test_reply_to_another_inbox_is_404_and_changes_nothing(outsider_api, inbox, tasks, django_capture_on_commit_callbacks):
    ticket = ticket_in(inbox)

    with django_capture_on_commit_callbacks(execute=True):
        response = outsider_api.post(url(ticket, "reply"), {"text": "Sneaky"}, format="json")

    assert response.status_code == 404
    assert not Message.objects.exists()
    assert tasks.sent == []


def test_note(api, agent, inbox, tasks, django_capture_on_commit_callbacks):
    ticket = ticket_in(inbox)

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(url(ticket, "notes"), {"text": "Customer is a VIP"}, format="json")

    assert response.status_code == 201
    assert response.json()["kind"] == "note" and response.json()["channel"] == "internal"
    assert Message.objects.get().author_user == agent
    assert tasks.sent == []  # notes are never delivered


def test_bad_note_is_400_and_changes_nothing(api, inbox, outsider_api):
    ticket = ticket_in(inbox)

    assert api.post(url(ticket, "notes"), {"text": " "}, format="json").json() == {"detail": "A note needs some text."}
    assert outsider_api.post(url(ticket, "notes"), {"text": "hi"}, format="json").status_code == 404
    assert not Message.objects.exists()


# --- Status and assignment ------------------------------------------------------------------


def test_set_status(api, inbox):
    ticket = ticket_in(inbox, status=Ticket.Status.OPEN)

    response = api.post(url(ticket, "status"), {"status": "solved"}, format="json")

    assert response.status_code == 200
    assert response.json()["status"] == "solved"
    ticket.refresh_from_db()
    assert ticket.status == "solved" and ticket.solved_at is not None
    assert Message.objects.get().kind == Message.Kind.SYSTEM


@pytest.mark.parametrize("payload", [{"status": "bogus"}, {}, {"status": ""}])
def test_unknown_status_is_400_and_changes_nothing(api, inbox, payload):
    ticket = ticket_in(inbox, status=Ticket.Status.OPEN)

    response = api.post(url(ticket, "status"), payload, format="json")

    assert response.status_code == 400
    assert list(response.json()) == ["status"]
    ticket.refresh_from_db()
    assert ticket.status == "open"
    assert not Message.objects.exists()


def test_set_status_in_another_inbox_is_404(outsider_api, inbox):
    ticket = ticket_in(inbox, status=Ticket.Status.OPEN)

    assert outsider_api.post(url(ticket, "status"), {"status": "solved"}, format="json").status_code == 404
    ticket.refresh_from_db()
    assert ticket.status == "open"


def test_assign_to_a_member_of_the_inbox(api, agent, inbox):
    colleague = UserFactory(first_name="Grace", last_name="Hopper")
    inbox.members.add(colleague)
    team = TeamFactory()
    ticket = ticket_in(inbox)

    response = api.post(url(ticket, "assign"), {"assignee": colleague.pk, "team": team.pk}, format="json")

    assert response.status_code == 200
    assert response.json()["assignee"] == {"id": colleague.pk, "name": "Grace Hopper"}
    assert response.json()["team"]["id"] == team.pk
    assert response.json()["status"] == "open"  # a new ticket opens once someone owns it
    assert Message.objects.get().text == "Ada Lovelace assigned the conversation to Grace Hopper."


def test_assign_to_a_manager_outside_the_inbox(api, inbox):
    manager = UserFactory()
    manager.groups.add(Group.objects.get_or_create(name=MANAGERS_GROUP)[0])
    ticket = ticket_in(inbox)

    response = api.post(url(ticket, "assign"), {"assignee": manager.pk}, format="json")

    assert response.status_code == 200
    assert response.json()["assignee"]["id"] == manager.pk


def test_unassign(api, agent, inbox):
    ticket = ticket_in(inbox, assignee=agent)

    response = api.post(url(ticket, "assign"), {"assignee": None}, format="json")

    assert response.status_code == 200
    assert response.json()["assignee"] is None
    ticket.refresh_from_db()
    assert ticket.assignee is None


@pytest.mark.parametrize("payload_of, field", [
    (lambda outsider: {"assignee": outsider.pk}, "assignee"),  # not a member of the inbox
    (lambda outsider: {"assignee": 999_999}, "assignee"),  # no such user
    (lambda outsider: {}, "assignee"),  # must say who, or null
    (lambda outsider: {"assignee": None, "team": 999_999}, "team"),  # no such team
])
def test_bad_assignment_is_400_and_changes_nothing(api, agent, inbox, payload_of, field):
    outsider = UserFactory()
    InboxFactory().members.add(outsider)
    ticket = ticket_in(inbox, assignee=agent)

    response = api.post(url(ticket, "assign"), payload_of(outsider), format="json")

    assert response.status_code == 400
    assert list(response.json()) == [field]
    ticket.refresh_from_db()
    assert ticket.assignee == agent and ticket.team is None
    assert not Message.objects.exists()


def test_inactive_members_cannot_be_assigned(api, inbox):
    former = UserFactory(is_active=False)
    inbox.members.add(former)
    ticket = ticket_in(inbox)

    assert api.post(url(ticket, "assign"), {"assignee": former.pk}, format="json").status_code == 400


def test_assign_in_another_inbox_is_404(outsider_api, inbox):
    ticket = ticket_in(inbox)

    assert outsider_api.post(url(ticket, "assign"), {"assignee": None}, format="json").status_code == 404


# --- Retry ----------------------------------------------------------------------------------


def failed_reply(inbox, agent) -> Message:
    ticket = ticket_in(inbox)
    return MessageFactory(conversation=ticket.conversation, kind=Message.Kind.OUTBOUND, author_user=agent,
                          delivery_status=Message.DeliveryStatus.FAILED, delivery_error="550 no such user")


def test_retry_a_failed_reply(api, agent, inbox, tasks, django_capture_on_commit_callbacks):
    message = failed_reply(inbox, agent)

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/api/v1/messages/{message.pk}/retry/")
        assert tasks.sent == []

    assert response.status_code == 200
    assert response.json()["delivery_status"] == "queued" and response.json()["delivery_error"] == ""
    message.refresh_from_db()
    assert message.delivery_status == Message.DeliveryStatus.QUEUED
    assert tasks.sent == [(DELIVER, (message.pk,))]


def test_retry_of_a_reply_that_did_not_fail_is_400(api, agent, inbox, tasks, django_capture_on_commit_callbacks):
    message = failed_reply(inbox, agent)
    Message.objects.filter(pk=message.pk).update(delivery_status=Message.DeliveryStatus.SENT)

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/api/v1/messages/{message.pk}/retry/")

    assert response.status_code == 400
    assert response.json() == {"detail": "Only a failed reply can be sent again."}
    message.refresh_from_db()
    assert message.delivery_status == Message.DeliveryStatus.SENT
    assert tasks.sent == []


def test_retry_in_another_inbox_is_404(outsider_api, agent, inbox, tasks):
    message = failed_reply(inbox, agent)

    assert outsider_api.post(f"/api/v1/messages/{message.pk}/retry/").status_code == 404
    message.refresh_from_db()
    assert message.delivery_status == Message.DeliveryStatus.FAILED


# --- Events catch-up ------------------------------------------------------------------------


def test_events_after_a_sequence_only_from_the_agents_inboxes(api, inbox):
    ticket = ticket_in(inbox)
    first = Event.objects.create(type="message.created", inbox=inbox, conversation=ticket.conversation)
    second = Event.objects.create(type="conversation.updated", inbox=inbox, conversation=ticket.conversation)
    Event.objects.create(type="message.created", inbox=InboxFactory())

    body = api.get(f"/api/v1/events/?after={first.pk}").json()

    assert [e["seq"] for e in body["results"]] == [second.pk]
    assert body["last_seq"] == second.pk


def test_paging_links_are_absolute_urls_on_the_same_endpoint(api, inbox):
    for m in range(3):
        ticket_in(inbox, minutes_ago=m)

    body = api.get("/api/v1/conversations/?page_size=2&view=all").json()

    parts = urlsplit(body["next"])
    assert parts.path == "/api/v1/conversations/" and "view=all" in parts.query and "cursor=" in parts.query
