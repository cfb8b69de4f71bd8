"""The agent dashboard: pages, fragments, actions, permissions and query budgets."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from conversations.models import Channel, Event, Message
from conversations.services import IncomingAttachment, attachments_store
from tests.factories import ContactFactory, MessageFactory, TicketFactory, UserFactory
from tickets.models import Tag, Ticket
from tickets.views import DASHBOARD_CSP

pytestmark = pytest.mark.django_db

FRAGMENT = {"HTTP_X_DESK_FRAGMENT": "1"}


@pytest.fixture
def agent():
    return UserFactory(username="alice", first_name="Alice", last_name="Agent")


@pytest.fixture
def ticket(inbox):
    contact = ContactFactory(name="Jane Customer", email="jane@example.org")
    ticket = TicketFactory(conversation__inbox=inbox, conversation__contact=contact, conversation__subject="Printer on fire")
    conversation = ticket.conversation
    conversation.last_message_at = timezone.now()
    conversation.last_message_preview = "My printer is on fire"
    conversation.last_message_channel = Channel.EMAIL
    conversation.waiting_since = timezone.now() - timedelta(hours=2, minutes=5)
    conversation.save()
    return ticket


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Runs a request's on_commit hooks (task enqueue, realtime push) as production would."""

    def run(call, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return call(*args, **kwargs)

    return run


def html_text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


# Login and pages -------------------------------------------------------------------------

def test_dashboard_sends_anonymous_visitors_to_the_login_page(client):
    response = client.get("/")

    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/"


def test_login_page_signs_an_agent_in(client, agent):
    page = client.get("/login/?next=/")
    assert page.status_code == 200
    assert 'name="username"' in page.content.decode() and 'name="next" value="/"' in page.content.decode()

    response = client.post("/login/", {"username": "alice", "password": "pw", "next": "/"})

    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/").status_code == 200


def test_login_page_shows_why_a_login_failed(client, agent):
    response = client.post("/login/", {"username": "alice", "password": "wrong"})

    assert response.status_code == 200
    assert "enter a correct username and password" in response.content.decode()


def test_logout_is_a_post_form(agent_client):
    page = html_text(agent_client.get("/"))
    assert re.search(r'<form method="post" action="/logout/" class="logout"><input type="hidden" name="csrfmiddlewaretoken"', page)

    response = agent_client.post("/logout/")

    assert response.status_code == 302 and response["Location"] == "/login/"
    assert agent_client.get("/").status_code == 302


def test_dashboard_lists_conversations_with_what_an_agent_scans_for(agent_client, ticket, agent):
    Ticket.objects.filter(pk=ticket.pk).update(assignee=agent, status=Ticket.Status.OPEN)
    Event.objects.create(type="message.created", inbox=ticket.conversation.inbox, conversation=ticket.conversation)
    last_seq = Event.objects.order_by("-id").first().id

    response = agent_client.get("/")

    assert response.status_code == 200
    assert response["Content-Security-Policy"] == DASHBOARD_CSP
    page = html_text(response)
    row = re.search(r'<li class="conv-item[^"]*" data-conversation-id="%d"[^>]*>(.*?)</li>' % ticket.pk, page).group(1)
    assert '<span class="badge ch-email">Email</span>' in row
    assert "Jane Customer" in row and "Printer on fire" in row and "My printer is on fire" in row
    assert "waiting 2h" in row
    assert '<span class="status st-open">Open</span>' in row
    assert '<span class="assignee">Alice Agent</span>' in row
    assert f'data-last-seq="{last_seq}"' in page
    assert "/static/desk/desk.js" in page and "<script>" not in page  # no inline script under the CSP


def test_dashboard_page_with_a_conversation_renders_both_panes(agent_client, ticket):
    MessageFactory(conversation=ticket.conversation, text="Hello there")

    response = agent_client.get(f"/c/{ticket.pk}/?view=all")

    page = html_text(response)
    assert response.status_code == 200
    assert 'class="conv-item is-selected"' in page
    assert f'data-conversation-id="{ticket.pk}" data-timeline-url="/c/{ticket.pk}/timeline"' in page
    assert "Hello there" in page
    assert 'class="tab is-active" aria-current="page">All<' in page


@pytest.mark.parametrize(
    ("view", "expected"),
    [
        ("open", {"new_mine", "open_unassigned", "pending_other"}),
        ("mine", {"new_mine"}),
        ("unassigned", {"open_unassigned"}),
        ("pending", {"pending_other"}),
        ("solved", {"solved"}),
        ("all", {"new_mine", "open_unassigned", "pending_other", "solved"}),
    ],
)
def test_list_fragment_shows_each_view(agent_client, agent, inbox, view, expected):
    other = UserFactory(username="bob")
    inbox.members.add(other)
    made = {
        "new_mine": TicketFactory(conversation__inbox=inbox, conversation__subject="new_mine", assignee=agent),
        "open_unassigned": TicketFactory(conversation__inbox=inbox, conversation__subject="open_unassigned", status="open"),
        "pending_other": TicketFactory(conversation__inbox=inbox, conversation__subject="pending_other", status="pending", assignee=other),
        "solved": TicketFactory(conversation__inbox=inbox, conversation__subject="solved", status="solved"),
    }
    TicketFactory(conversation__subject="another inbox")  # never visible to this agent

    response = agent_client.get(f"/list?view={view}")

    assert response.status_code == 200
    assert response["Content-Security-Policy"] == DASHBOARD_CSP
    shown = set(re.findall(r'<span class="subject">([^<]+)</span>', response.content.decode()))
    assert shown == expected
    assert set(map(int, re.findall(r'data-conversation-id="(\d+)"', response.content.decode()))) == {made[k].pk for k in expected}


def test_list_fragment_marks_the_selected_conversation(agent_client, ticket):
    response = agent_client.get(f"/list?view=all&selected={ticket.pk}")

    assert f'class="conv-item is-selected" data-conversation-id="{ticket.pk}"' in response.content.decode()


def _tickets(inbox, count: int, agent) -> None:
    tag = Tag.objects.create(name=f"vip-{count}")
    for i in range(count):
        ticket = TicketFactory(conversation__inbox=inbox, assignee=agent if i % 2 else None)
        ticket.tags.add(tag)


@pytest.mark.parametrize("rows", [5, 50])
def test_list_fragment_query_count_does_not_grow_with_rows(agent_client, agent, inbox, rows, django_assert_num_queries):
    _tickets(inbox, rows, agent)
    # 1 session, 2 user, 3 the agent's inboxes and teams (the view tabs; their ids scope the
    # list), 4 manager group check, 5 every view's count in one aggregate, 6 the page of
    # tickets with conversation, contact, inbox, assignee and team joined, 7 their tags.
    with django_assert_num_queries(7):
        response = agent_client.get("/list?view=all")

    assert response.content.decode().count('class="conv-item') == rows


def test_list_fragment_shows_one_page(agent_client, agent, inbox):
    _tickets(inbox, 52, agent)

    response = agent_client.get("/list?view=all")

    page = response.content.decode()
    assert page.count('class="conv-item') == 50
    assert "Showing the 50 most recently active." in page


# The timeline ------------------------------------------------------------------------------

def test_timeline_fragment_shows_every_kind_of_message(agent_client, ticket, agent):
    conversation = ticket.conversation
    MessageFactory(conversation=conversation, kind=Message.Kind.INBOUND, channel=Channel.EMAIL, author_contact=conversation.contact,
                   text="New part\n\nOn Monday Jane wrote:\n> old part", text_display="New part", html="<p>New <b>part</b></p>",
                   thread_rule=Message.ThreadRule.IN_REPLY_TO, notices=["Attachment huge.bin (12.0 MB) was refused: larger than the 10.0 MB limit."])
    failed = MessageFactory(conversation=conversation, kind=Message.Kind.OUTBOUND, author_user=agent, text="We are on it",
                            delivery_status=Message.DeliveryStatus.FAILED, delivery_error="550 mailbox unavailable")
    MessageFactory(conversation=conversation, kind=Message.Kind.OUTBOUND, author_user=agent, text="Delivered one",
                   delivery_status=Message.DeliveryStatus.DELIVERED)
    MessageFactory(conversation=conversation, kind=Message.Kind.NOTE, channel=Channel.INTERNAL, author_user=agent, text="Call them")
    MessageFactory(conversation=conversation, kind=Message.Kind.SYSTEM, channel=Channel.INTERNAL, text="Alice changed the status")
    sms = MessageFactory(conversation=conversation, kind=Message.Kind.INBOUND, channel=Channel.SMS, text="sent from my phone")
    attachments_store(message=sms, attachments=(IncomingAttachment(filename="invoice.pdf", content=b"%PDF-1.4\n%%EOF\n"),))
    MessageFactory(conversation=conversation, kind=Message.Kind.INBOUND, channel=Channel.WEBCHAT, text="typed in the widget")
    MessageFactory(conversation=conversation, kind=Message.Kind.OUTBOUND, channel=Channel.WEBCHAT, author_user=agent,
                   text="Seen one", delivery_status=Message.DeliveryStatus.READ)

    response = agent_client.get(f"/c/{ticket.pk}/timeline")

    assert response.status_code == 200
    assert response["Content-Security-Policy"] == DASHBOARD_CSP
    page = html_text(response)
    items = dict(re.findall(r'<li class="msg (msg-\w+)" id="m-\d+"(.*?)</li> (?=<li class="msg|</ol>)', page))
    assert set(items) == {"msg-inbound", "msg-outbound", "msg-note", "msg-system"}
    assert page.count('<span class="badge ch-email" data-testid="message-channel">Email</span>') == 3
    # Every message says which channel it came or went through.
    badge = '<span class="badge ch-{}" data-testid="message-channel">{}</span>'
    assert badge.format("sms", "SMS") in page and badge.format("internal", "Internal") in page
    assert page.count(badge.format("webchat", "Web chat")) == 2
    assert '<span class="delivery dl-read" title="Delivery status" data-testid="delivery-status">Seen</span>' in page
    assert '<div class="text" data-part="short">New part</div>' in page
    assert 'data-part="full" hidden>New part On Monday Jane wrote: &gt; old part</div>' in page
    assert 'data-action="toggle-full" aria-expanded="false">Show full message</button>' in page
    assert 'data-action="toggle-html" aria-expanded="false">View formatted</a>' in page
    assert "threaded by: In-Reply-To header" in page
    assert "Attachment huge.bin (12.0 MB) was refused" in page
    assert '<span class="delivery dl-failed" title="Delivery status" data-testid="delivery-status">Failed</span>' in page
    assert '<span class="delivery-error">550 mailbox unavailable</span>' in page
    assert f'action="/messages/{failed.pk}/retry"' in page and page.count(">Retry</button>") == 1
    assert '<span class="delivery dl-delivered" title="Delivery status" data-testid="delivery-status">Delivered</span>' in page
    assert "<span class=\"kind\">Internal note</span>" in page and "Call them" in page
    assert "Alice changed the status" in page
    attachment = sms.attachments.get()
    assert f'<a href="/attachments/{attachment.uuid}/" download>invoice.pdf</a>' in page


def test_timeline_never_renders_message_html_inline(agent_client, ticket):
    MessageFactory(conversation=ticket.conversation, text="plain", html='<img src="https://tracker.test/p.gif"><b>bold</b>')

    page = agent_client.get(f"/c/{ticket.pk}/timeline").content.decode()

    assert "tracker.test" not in page and "<b>bold</b>" not in page


def _messages(ticket, count: int) -> None:
    for i in range(count):
        message = MessageFactory(conversation=ticket.conversation, author_contact=ticket.conversation.contact)
        if i % 2:
            attachments_store(message=message, attachments=(IncomingAttachment(filename=f"f{i}.txt", content=b"hello"),))


@pytest.mark.parametrize("count", [2, 30])
def test_timeline_query_count_does_not_grow_with_messages(agent_client, ticket, count, django_assert_num_queries):
    _messages(ticket, count)
    # 1 session, 2 user, 3 manager group check, 4 the agent's inbox ids,
    # 5 the ticket with conversation, contact, inbox, its channel configs, assignee and team
    # (permission check), 6 the inbox's agents (assignee choices), 7 the contact's identities
    # (header), 8 the channel of the latest customer message (default reply channel),
    # 9 the SLA clocks with their calendars (panel), 10 the ticket's tags (header),
    # 11 the messages with their authors, 12 their attachments (prefetch), 13 the teams (the
    # header's transfer select).
    # (An inbox with an SMS number adds the SMS recipient and its consent; one with web chat
    # its visitors: see test_timeline_query_count_with_every_channel. A ticket with SLA
    # clocks adds their events: see tests/tickets/test_sla_views.py.)
    with django_assert_num_queries(13):
        response = agent_client.get(f"/c/{ticket.pk}/timeline")

    assert response.content.decode().count('<li class="msg ') == count


# Permissions ---------------------------------------------------------------------------

def test_agent_of_another_inbox_gets_404_everywhere(stranger_client, ticket, agent, tasks):
    message = MessageFactory(conversation=ticket.conversation, kind=Message.Kind.OUTBOUND, author_user=agent,
                             delivery_status=Message.DeliveryStatus.FAILED, html="<p>x</p>")
    before = Message.objects.count()

    for url in (f"/c/{ticket.pk}/", f"/c/{ticket.pk}/timeline", f"/messages/{message.pk}/html"):
        assert stranger_client.get(url).status_code == 404, url
    for url, data in ((f"/c/{ticket.pk}/reply", {"text": "hi"}), (f"/c/{ticket.pk}/note", {"text": "hi"}),
                      (f"/c/{ticket.pk}/status", {"status": "solved"}), (f"/c/{ticket.pk}/assign", {"assignee": ""}),
                      (f"/messages/{message.pk}/retry", {})):
        assert stranger_client.post(url, data, **FRAGMENT).status_code == 404, url

    assert Message.objects.count() == before
    assert Ticket.objects.get(pk=ticket.pk).status == Ticket.Status.NEW
    assert Message.objects.get(pk=message.pk).delivery_status == Message.DeliveryStatus.FAILED
    assert tasks.sent == []
    assert "Printer on fire" not in stranger_client.get("/list?view=all").content.decode()


def test_manager_sees_every_inbox(client, ticket):
    boss = UserFactory(username="boss", is_superuser=True)
    client.force_login(boss)

    assert client.get(f"/c/{ticket.pk}/timeline").status_code == 200
    assert "Printer on fire" in client.get("/list?view=all").content.decode()


# Actions ---------------------------------------------------------------------------------

def test_reply_queues_an_outbound_message_and_its_delivery(agent_client, ticket, agent, tasks, committed):
    response = committed(agent_client.post, f"/c/{ticket.pk}/reply", {"text": "We are on it.", "mode": "reply"}, **FRAGMENT)

    assert response.status_code == 200
    reply = Message.objects.get(conversation=ticket.conversation, kind=Message.Kind.OUTBOUND)
    assert (reply.text, reply.channel, reply.author_user, reply.delivery_status) == ("We are on it.", Channel.EMAIL, agent, "queued")
    assert tasks.sent == [("channels_in.outbound_deliver", (reply.pk,))]
    assert Event.objects.filter(type="message.created", message=reply).exists()
    assert f'id="m-{reply.pk}"' in response.content.decode()  # the fragment to swap in


def test_reply_submitted_as_solved_sets_the_status_too(agent_client, ticket, agent, committed):
    committed(agent_client.post, f"/c/{ticket.pk}/reply", {"text": "Fixed it.", "status": "solved"}, **FRAGMENT)

    ticket.refresh_from_db()
    assert ticket.status == Ticket.Status.SOLVED and ticket.solved_at is not None
    assert list(ticket.conversation.messages.values_list("kind", flat=True)) == ["outbound", "system"]


def test_reply_without_javascript_redirects_back(agent_client, ticket):
    response = agent_client.post(f"/c/{ticket.pk}/reply", {"text": "Hi"})

    assert response.status_code == 302 and response["Location"] == f"/c/{ticket.pk}/"


def test_empty_reply_is_refused_with_a_reason(agent_client, ticket, tasks):
    response = agent_client.post(f"/c/{ticket.pk}/reply", {"text": "   "}, **FRAGMENT)

    assert response.status_code == 400
    assert response.content.decode() == "A reply needs some text."
    assert not Message.objects.exists() and tasks.sent == []


def test_empty_reply_without_javascript_shows_the_reason_after_redirect(agent_client, ticket):
    response = agent_client.post(f"/c/{ticket.pk}/reply", {"text": ""}, follow=True)

    assert "text: This field is required." in response.content.decode()


def test_note_is_internal_and_never_delivered(agent_client, ticket, agent, tasks, committed):
    response = committed(agent_client.post, f"/c/{ticket.pk}/note", {"text": "Customer is a VIP"}, **FRAGMENT)

    assert response.status_code == 200
    note = Message.objects.get(conversation=ticket.conversation)
    assert (note.kind, note.channel, note.author_user, note.delivery_status) == ("note", "internal", agent, "")
    assert tasks.sent == []
    assert "Customer is a VIP" in response.content.decode()


def test_status_change_records_a_system_line_and_an_event(agent_client, ticket):
    response = agent_client.post(f"/c/{ticket.pk}/status", {"status": "pending"}, **FRAGMENT)

    assert response.status_code == 200
    assert Ticket.objects.get(pk=ticket.pk).status == Ticket.Status.PENDING
    line = Message.objects.get(conversation=ticket.conversation, kind=Message.Kind.SYSTEM)
    assert line.text == "Alice Agent changed the status from New to Pending."
    assert Event.objects.filter(type="conversation.updated", conversation=ticket.conversation).count() == 1
    assert '<option value="pending" selected>Pending</option>' in response.content.decode()


def test_unknown_status_is_refused(agent_client, ticket):
    response = agent_client.post(f"/c/{ticket.pk}/status", {"status": "nonsense"}, **FRAGMENT)

    assert response.status_code == 400
    assert Ticket.objects.get(pk=ticket.pk).status == Ticket.Status.NEW


def test_assign_to_an_agent_of_the_inbox_then_to_me_then_nobody(agent_client, ticket, inbox, agent):
    bob = UserFactory(username="bob", first_name="Bob", last_name="B")
    inbox.members.add(bob)
    page = agent_client.get(f"/c/{ticket.pk}/timeline").content.decode()
    assert f'<option value="{bob.pk}">Bob B</option>' in page and f'<option value="{agent.pk}">Me (Alice Agent)</option>' in page

    agent_client.post(f"/c/{ticket.pk}/assign", {"assignee": str(bob.pk)}, **FRAGMENT)
    assert Ticket.objects.get(pk=ticket.pk).assignee == bob
    agent_client.post(f"/c/{ticket.pk}/assign", {"assignee": str(agent.pk)}, **FRAGMENT)
    assert Ticket.objects.get(pk=ticket.pk).assignee == agent
    agent_client.post(f"/c/{ticket.pk}/assign", {"assignee": ""}, **FRAGMENT)

    assert Ticket.objects.get(pk=ticket.pk).assignee is None
    assert list(Message.objects.filter(kind="system").values_list("text", flat=True)) == [
        "Alice Agent assigned the conversation to Bob B.",
        "Alice Agent took the conversation.",
        "Alice Agent unassigned the conversation.",
    ]


def test_assign_to_someone_outside_the_inbox_is_refused(agent_client, ticket):
    outsider = UserFactory(username="outsider")

    response = agent_client.post(f"/c/{ticket.pk}/assign", {"assignee": str(outsider.pk)}, **FRAGMENT)

    assert response.status_code == 400
    assert Ticket.objects.get(pk=ticket.pk).assignee is None


def test_retry_requeues_a_failed_reply(agent_client, ticket, agent, tasks, committed):
    failed = MessageFactory(conversation=ticket.conversation, kind=Message.Kind.OUTBOUND, author_user=agent,
                            delivery_status=Message.DeliveryStatus.FAILED, delivery_error="timeout", delivery_attempts=6)

    response = committed(agent_client.post, f"/messages/{failed.pk}/retry", {}, **FRAGMENT)

    assert response.status_code == 200
    failed.refresh_from_db()
    assert (failed.delivery_status, failed.delivery_error, failed.delivery_attempts) == ("queued", "", 0)
    assert tasks.sent == [("channels_in.outbound_deliver", (failed.pk,))]


def test_retry_of_a_reply_that_did_not_fail_is_refused(agent_client, ticket, agent, tasks):
    sent = MessageFactory(conversation=ticket.conversation, kind=Message.Kind.OUTBOUND, author_user=agent,
                          delivery_status=Message.DeliveryStatus.SENT)

    response = agent_client.post(f"/messages/{sent.pk}/retry", {}, **FRAGMENT)

    assert response.status_code == 400 and response.content.decode() == "Only a failed reply can be sent again."
    assert Message.objects.get(pk=sent.pk).delivery_status == "sent" and tasks.sent == []


def test_actions_need_post(agent_client, ticket):
    assert agent_client.get(f"/c/{ticket.pk}/reply").status_code == 405


def test_actions_need_a_csrf_token(client, agent, ticket):
    client.force_login(agent)
    client.handler.enforce_csrf_checks = True

    assert client.post(f"/c/{ticket.pk}/note", {"text": "x"}, **FRAGMENT).status_code == 403
    assert not Message.objects.exists()
