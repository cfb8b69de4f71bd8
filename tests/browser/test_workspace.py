"""The agent workspace in a real browser, with two agents of one inbox on their own screens:
presence (viewing, typing), the collision warning, tabs with their drafts, the keyboard."""
from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from django.db import transaction
from playwright.sync_api import Browser, BrowserContext, Page, expect

from conversations.models import Channel, Message
from conversations.services import IncomingMessage, message_receive
from tests.browser.helpers import in_thread, login, wait_until
from tests.factories import ContactFactory, EmailChannelFactory, InboxFactory, MessageFactory, TicketFactory, UserFactory
from tickets.models import CannedResponse, Ticket

pytestmark = pytest.mark.browser


@dataclass
class Desk:
    inbox: object
    alice: object
    bob: object

    def ticket(self, subject: str, customer: str, text: str) -> Ticket:
        ticket = TicketFactory(conversation__inbox=self.inbox, conversation__subject=subject,
                               conversation__contact=ContactFactory(name=customer))
        MessageFactory(conversation=ticket.conversation, author_contact=ticket.conversation.contact, text=text)
        return ticket


@pytest.fixture
def desk(transactional_db) -> Desk:  # noqa: ANN001
    channel = EmailChannelFactory(address="help@acme.test", inbox__name="Help")
    alice = UserFactory(username="alice", first_name="Alice", last_name="Agent")
    bob = UserFactory(username="bob", first_name="Bob", last_name="Baker")
    channel.inbox.members.add(alice, bob)
    return Desk(inbox=channel.inbox, alice=alice, bob=bob)


@pytest.fixture
def agent_page(browser: Browser, asgi_server: str, transactional_db, redis_layer) -> Iterator[Callable[[str], Page]]:
    """Opens a browser context of its own (cookies, storage) per agent, logged in.

    At the end each page's requests in flight (a seen receipt, a refresh) are let finish
    before its context closes: the database is flushed next, and PostgreSQL's TRUNCATE can
    deadlock with a request still writing.
    """
    opened: list[tuple[BrowserContext, Page, set]] = []

    def open_page(username: str) -> Page:
        context = browser.new_context(base_url=asgi_server)
        context.set_default_timeout(8000)
        page = context.new_page()
        pending: set = set()
        page.on("request", lambda request: pending.add(request))
        page.on("requestfinished", lambda request: pending.discard(request))
        page.on("requestfailed", lambda request: pending.discard(request))
        opened.append((context, page, pending))
        login(page, username)
        return page

    yield open_page
    for context, page, pending in opened:
        if not page.is_closed():
            wait_until(lambda: not pending, timeout=5, what="the page's requests to finish", page=page)  # noqa: B023
        context.close()


def open_conversation(page: Page, ticket: Ticket) -> None:
    page.locator(f".conv-item[data-conversation-id='{ticket.pk}'] a").first.click()
    expect(page.locator("#conv")).to_have_attribute("data-conversation-id", str(ticket.pk))


def tab(page: Page, ticket: Ticket):  # noqa: ANN201
    return page.locator(f"#conv-tabs [data-tab-id='{ticket.pk}']")


def customer_writes(ticket: Ticket, text: str) -> Message:
    contact = ticket.conversation.contact
    with transaction.atomic():
        return message_receive(conversation=ticket.conversation, contact=contact, thread_rule="in_reply_to",
                               incoming=IncomingMessage(channel=Channel.EMAIL, from_address=contact.email, text=text))


def test_viewing_and_typing_show_on_the_other_agents_screen(desk: Desk, agent_page):
    ticket = desk.ticket("Leaking kettle", "Jane Doe", "My kettle leaks.")
    alice = agent_page("alice")
    bob = agent_page("bob")
    open_conversation(alice, ticket)
    expect(alice.locator("#presence")).to_be_hidden()

    open_conversation(bob, ticket)

    # Both at once: Bob's arrival makes Alice's page answer, without waiting for its 20 s re-send.
    expect(alice.locator("#presence")).to_have_text("Bob is viewing", timeout=3000)
    expect(bob.locator("#presence")).to_have_text("Alice is viewing", timeout=3000)
    expect(tab(alice, ticket).get_by_test_id("tab-presence")).to_be_visible()

    bob.locator("#composer textarea").press_sequentially("On it", delay=20)
    expect(alice.locator("#presence")).to_have_text("Bob is typing…")

    # Bob closes his tab: he is gone from Alice's screen (his draft stays with him).
    bob.keyboard.press("Escape")
    bob.keyboard.press("w")
    expect(bob.locator("#conv")).to_have_count(0)
    expect(alice.locator("#presence")).to_be_hidden()
    expect(tab(alice, ticket).get_by_test_id("tab-presence")).to_be_hidden()

    # He opens it again and then closes the browser: the server takes his presence back.
    open_conversation(bob, ticket)
    expect(bob.locator("#composer textarea")).to_have_value("On it")
    expect(alice.locator("#presence")).to_have_text("Bob is viewing")
    bob.context.close()
    expect(alice.locator("#presence")).to_be_hidden()


def test_collision_warning_when_another_agent_or_the_customer_writes_meanwhile(desk: Desk, agent_page):
    ticket = desk.ticket("Wrong size", "Jane Doe", "The shoes are too small.")
    alice = agent_page("alice")
    bob = agent_page("bob")
    open_conversation(alice, ticket)
    open_conversation(bob, ticket)
    alice.locator("#composer textarea").fill("Let me check the warehouse for a bigger pair.")

    bob.fill("#composer textarea", "A bigger pair is on its way.")
    bob.click("#composer button[data-mode=reply]")
    expect(bob.locator("#timeline .msg-outbound")).to_contain_text("A bigger pair is on its way.")

    # Before Alice sends: a banner, as soon as Bob's reply reaches her timeline.
    expect(alice.locator("#timeline")).to_contain_text("A bigger pair is on its way.")
    expect(alice.get_by_test_id("collision-live")).to_contain_text("Another agent replied")
    # She sends anyway: the server refuses and says what she missed; nothing is sent.
    alice.locator("#composer textarea").press("Control+Enter")
    warning = alice.get_by_test_id("collision")
    expect(warning).to_contain_text("A bigger pair is on its way.")
    expect(alice.locator("#composer textarea")).to_have_value("Let me check the warehouse for a bigger pair.")
    assert not Message.objects.filter(text__startswith="Let me check").exists()

    # Review keeps the draft; what is on screen counts as seen now.
    alice.get_by_test_id("collision-review").click()
    expect(warning).to_have_count(0)
    expect(alice.locator("#composer textarea")).to_be_focused()  # reviewed: back to writing
    expect(alice.locator("#composer textarea")).to_have_value("Let me check the warehouse for a bigger pair.")
    expect(alice.get_by_test_id("collision-live")).to_have_count(0)

    # The customer writes meanwhile: the banner again, and the send is held again.
    customer = in_thread(customer_writes, ticket, "Actually, size 44 please.")
    expect(alice.locator(f"#m-{customer.pk}")).to_contain_text("size 44")
    expect(alice.get_by_test_id("collision-live")).to_contain_text("The customer wrote again")
    alice.locator("#composer textarea").press("Control+Enter")
    expect(warning).to_contain_text("Actually, size 44 please.")
    expect(warning).not_to_contain_text("A bigger pair")  # reviewed already

    alice.get_by_test_id("collision-send").click()

    expect(alice.locator("#timeline .msg-outbound").last).to_contain_text("Let me check the warehouse")
    expect(alice.locator("#composer textarea")).to_have_value("")
    expect(warning).to_have_count(0)
    expect(alice.get_by_test_id("collision-live")).to_have_count(0)
    sent = Message.objects.filter(conversation=ticket.conversation, kind=Message.Kind.OUTBOUND).order_by("id")
    assert [(m.author_user_id, m.text) for m in sent] == [
        (desk.bob.pk, "A bigger pair is on its way."),
        (desk.alice.pk, "Let me check the warehouse for a bigger pair."),
    ]


def test_tabs_keep_drafts_and_switch_without_a_request(desk: Desk, agent_page):
    first = desk.ticket("Invoice copy", "Ann Lee", "Please resend my invoice.")
    second = desk.ticket("Late parcel", "Max Roe", "Where is my parcel?")
    alice = agent_page("alice")
    timeline_requests: list[str] = []
    responses: list[str] = []
    alice.on("request", lambda request: timeline_requests.append(request.url) if "/timeline" in request.url else None)
    alice.on("response", lambda response: responses.append(response.url))

    open_conversation(alice, first)
    alice.locator("#composer textarea").fill("Invoice attached again.")
    open_conversation(alice, second)
    alice.keyboard.press("n")
    alice.keyboard.type("Check with the carrier.")
    expect(alice.locator("#conv-tabs [data-tab-id]")).to_have_count(2)
    expect(tab(alice, second)).to_have_class(re.compile("is-active"))
    # Opened, so read (the seen receipt): the unread mark below can only come from what follows.
    wait_until(lambda: any(url.endswith(f"/c/{second.pk}/seen") for url in responses), timeout=5,
               what="the seen receipt", page=alice)

    timeline_requests.clear()
    alice.keyboard.press("Escape")
    alice.keyboard.press("[")

    expect(alice.locator("#conv")).to_have_attribute("data-conversation-id", str(first.pk))
    expect(alice.locator("#composer textarea")).to_have_value("Invoice attached again.")
    expect(alice.locator("#composer input[value=reply]")).to_be_checked()
    assert alice.url.endswith(f"/c/{first.pk}/?view=open")
    assert timeline_requests == []  # the hidden pane was kept: switching costs no request

    # The customer writes in the hidden tab: it is marked unread and refreshed behind the scenes.
    responses.clear()
    message = in_thread(customer_writes, second, "It says delivered, but it is not here.")
    expect(tab(alice, second)).to_have_attribute("data-unread", "1")
    expect(tab(alice, first)).not_to_have_attribute("data-unread", "1")
    wait_until(lambda: any(f"/c/{second.pk}/timeline" in url for url in responses), timeout=5,
               what="the hidden tab's refresh", page=alice)
    # Refreshed behind its tab, not looked at: still unread in the list too.
    alice.evaluate("window.desk.refreshList()")
    expect(alice.locator(f".conv-item[data-conversation-id='{second.pk}']")).to_have_attribute("data-unread", "1")
    timeline_requests.clear()
    alice.keyboard.press("]")
    expect(alice.locator(f"#m-{message.pk}")).to_contain_text("It says delivered")
    expect(tab(alice, second).get_by_test_id("tab-unread")).to_be_hidden()
    expect(alice.locator(f".conv-item[data-conversation-id='{second.pk}']")).not_to_have_attribute("data-unread", "1")
    expect(alice.locator("#composer textarea")).to_have_value("Check with the carrier.")
    expect(alice.locator("#composer input[value=note]")).to_be_checked()
    assert timeline_requests == []

    # A reload keeps the tabs (this browser tab) and the drafts (this agent, this browser).
    alice.reload()
    alice.wait_for_selector("#conn[data-state=live]")
    expect(alice.locator("#conv-tabs [data-tab-id]")).to_have_count(2)
    expect(alice.locator("#composer textarea")).to_have_value("Check with the carrier.")
    tab(alice, first).locator("a").click()
    expect(alice.locator("#composer textarea")).to_have_value("Invoice attached again.")

    # Sent: the draft is gone for good, the other one stays.
    alice.locator("#composer textarea").press("Control+Enter")
    expect(alice.locator("#timeline .msg-outbound")).to_contain_text("Invoice attached again.")
    drafts = alice.evaluate("Object.keys(localStorage).filter((k) => k.startsWith('desk.draft.'))")
    assert drafts == [f"desk.draft.{desk.alice.pk}.{second.pk}"]


def test_keyboard_reply_note_assign_and_solve(desk: Desk, agent_page):
    ticket = desk.ticket("Password reset", "Jane Doe", "I cannot log in.")
    alice = agent_page("alice")
    open_conversation(alice, ticket)
    textarea = alice.locator("#composer textarea")

    alice.keyboard.press("r")
    expect(textarea).to_be_focused()
    alice.keyboard.type("A reset link is on its way.")
    alice.keyboard.press("Control+Enter")
    expect(alice.locator("#timeline .msg-outbound")).to_contain_text("A reset link is on its way.")
    expect(textarea).to_have_value("")

    alice.keyboard.press("Escape")  # out of the composer: letters are commands again
    expect(textarea).not_to_be_focused()
    alice.keyboard.press("n")
    expect(alice.locator("#composer input[value=note]")).to_be_checked()
    expect(textarea).to_be_focused()
    alice.keyboard.type("Sent via the admin tool.")
    alice.keyboard.press("Escape")
    expect(textarea).not_to_be_focused()
    alice.keyboard.press("r")  # back in, now a reply again; the text is kept
    expect(alice.locator("#composer input[value=reply]")).to_be_checked()
    expect(textarea).to_have_value("Sent via the admin tool.")
    alice.keyboard.press("Escape")

    alice.keyboard.press("a")
    wait_until(lambda: Ticket.objects.filter(pk=ticket.pk, assignee=desk.alice).exists(), timeout=5, what="the assignment", page=alice)
    expect(alice.locator("#conv-head select[name=assignee]")).to_have_value(str(desk.alice.pk))
    alice.keyboard.press("e")
    wait_until(lambda: Ticket.objects.filter(pk=ticket.pk, status=Ticket.Status.SOLVED).exists(), timeout=5, what="the solve", page=alice)
    expect(alice.locator("#conv-head select[name=status]")).to_have_value("solved")

    alice.keyboard.press("?")
    help_overlay = alice.get_by_test_id("keys-help")
    expect(help_overlay).to_be_visible()
    for label in ("Reply", "Internal note", "Send", "Assign to me", "Solve", "Next open tab", "Canned responses"):
        expect(help_overlay.locator("dd", has_text=re.compile(f"^{label}$"))).to_have_count(1)


def test_canned_picker_and_mentions_from_the_keyboard(desk: Desk, agent_page):
    ticket = desk.ticket("Refund", "Jane Doe", "I want my money back.")
    CannedResponse.objects.create(title="Refund issued", shortcut="refund",
                                  body="Hi {{ contact.first_name }}, your refund is on its way. {{ agent.first_name }}")
    CannedResponse.objects.create(title="Shipping times", shortcut="shipping", body="We ship within 2 days.")
    CannedResponse.objects.create(title="Other inbox", shortcut="other", body="Not here.", inbox=InboxFactory())
    alice = agent_page("alice")
    open_conversation(alice, ticket)
    textarea = alice.locator("#composer textarea")

    # "/" at the start of an empty reply opens the picker instead of typing a slash.
    alice.keyboard.press("r")
    alice.keyboard.press("/")
    picker = alice.get_by_test_id("canned-picker")
    expect(picker.get_by_test_id("canned-search")).to_be_focused()
    alice.keyboard.press("/")  # a second slash is a slash after all
    expect(picker).to_have_count(0)
    expect(textarea).to_have_value("/")
    alice.keyboard.press("Backspace")
    alice.keyboard.press("/")
    expect(picker.get_by_test_id("canned-search")).to_be_focused()
    expect(picker.get_by_test_id("canned-item")).to_have_count(2)  # not the other inbox's
    alice.keyboard.type("ship")
    expect(picker.get_by_test_id("canned-item")).to_have_count(1)
    alice.keyboard.press("Backspace")
    alice.keyboard.press("Backspace")
    alice.keyboard.press("Backspace")
    alice.keyboard.press("Backspace")
    expect(picker.get_by_test_id("canned-item")).to_have_count(2)
    alice.keyboard.press("ArrowDown")
    alice.keyboard.press("ArrowUp")
    alice.keyboard.press("Enter")
    expect(picker).to_have_count(0)
    expect(textarea).to_have_value("Hi Jane, your refund is on its way. Alice")
    expect(textarea).to_be_focused()

    # mod+/ opens it anywhere in the text; Escape gives the composer back untouched.
    alice.keyboard.press("Control+/")
    expect(picker).to_be_visible()
    alice.keyboard.press("Escape")
    expect(picker).to_have_count(0)
    expect(textarea).to_be_focused()

    # An internal note: @ suggests the agents who can see the conversation.
    alice.keyboard.press("Escape")
    alice.keyboard.press("n")
    alice.keyboard.press("Control+a")
    alice.keyboard.type("Approved, @b")
    mentions = alice.get_by_test_id("mention-list")
    expect(mentions.get_by_test_id("mention-item")).to_have_count(1)
    expect(mentions).to_contain_text("Bob Baker")
    alice.keyboard.press("Enter")
    expect(textarea).to_have_value("Approved, @bob ")
    expect(mentions).to_have_count(0)
    alice.keyboard.type("please refund.")
    alice.keyboard.press("Control+Enter")
    expect(alice.locator("#timeline .msg-note")).to_contain_text("Approved, @bob please refund.")
