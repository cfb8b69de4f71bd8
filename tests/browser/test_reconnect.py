"""Realtime that never drifts, in the browser: what the socket missed comes from the events API.

The page's socket runs through Playwright's WebSocket routing, which lets a test hold back a
reconnection or lose a frame in transit, as a flaky network does; the server end is the real
one (uvicorn, Redis channel layer).
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from django.db import transaction
from playwright.sync_api import Page, WebSocketRoute, expect

from conversations.models import Channel, Event, Message
from conversations.realtime import user_sockets_reconnect
from conversations.services import IncomingMessage
from conversations.threading import ThreadMatch
from tests.browser.helpers import in_thread, login
from tests.factories import ContactFactory, EmailChannelFactory, MessageFactory, TicketFactory, UserFactory
from tickets.models import Ticket
from tickets.services import inbound_message_record

pytestmark = pytest.mark.browser


@pytest.fixture
def agent(db):
    channel = EmailChannelFactory(address="support@acme.test", inbox__name="Support")
    agent = UserFactory(username="alice", first_name="Alice")
    channel.inbox.members.add(agent)
    return agent


def conversation_with_customer(agent, subject: str, text: str) -> Ticket:
    ticket = TicketFactory(conversation__inbox=agent.inboxes.get(), conversation__subject=subject,
                           conversation__contact=ContactFactory(name="Jane Doe", email=f"jane.{subject.split()[0].lower()}@example.org"))
    MessageFactory(conversation=ticket.conversation, text=text, text_display=text, channel=Channel.EMAIL)
    return ticket


def customer_writes(ticket: Ticket, text: str) -> Message:
    """A customer's email lands in the conversation through the inbound service (as a worker would)."""
    contact = ticket.conversation.contact
    incoming = IncomingMessage(channel=Channel.EMAIL, from_address=contact.email, to_address="support@acme.test",
                               subject=f"Re: {ticket.conversation.subject}", text=text, text_display=text,
                               external_id=f"<{text[:20].replace(' ', '.')}.{Message.objects.count()}@example.org>")
    with transaction.atomic():
        return inbound_message_record(inbox=ticket.conversation.inbox, contact=contact, incoming=incoming,
                                      thread=ThreadMatch(conversation=ticket.conversation, rule=Message.ThreadRule.IN_REPLY_TO))


@dataclass
class Network:
    """Between the page and the server: can refuse new connections and lose frames."""

    open: bool = True
    refused: int = 0
    lose: Callable[[dict], bool] = lambda frame: False
    delivered: list[dict] = field(default_factory=list)
    lost: list[dict] = field(default_factory=list)

    def route(self, ws: WebSocketRoute) -> None:
        if not self.open:
            self.refused += 1
            ws.close()  # the page sees its connection attempt fail
            return
        server = ws.connect_to_server()

        def from_server(message: str | bytes) -> None:
            frame = json.loads(message)
            if self.lose(frame):
                self.lost.append(frame)
                return
            self.delivered.append(frame)
            ws.send(message)

        server.on_message(from_server)


@pytest.fixture
def network(page: Page) -> Network:
    network = Network()
    page.route_web_socket("**/ws/agent/", network.route)
    return network


def events_requests(page: Page) -> list[str]:
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url) if "/api/v1/events/" in request.url else None)
    return requests


def test_a_message_arriving_while_the_server_dropped_the_socket_appears_after_the_reconnect(page: Page, agent, network):
    ticket = conversation_with_customer(agent, "Parcel lost", "My parcel never arrived.")
    login(page, "alice")
    page.click(f"a[data-conversation='{ticket.pk}']")
    expect(page.locator("#timeline")).to_contain_text("My parcel never arrived.")
    page.evaluate("window.__sameDocument = true")  # gone if the page reloads
    asked = events_requests(page)

    # The server drops the socket (a deploy, a kick); the page's reconnection is held back
    # until the customer's message has arrived, so the socket cannot have carried it.
    network.open = False
    in_thread(user_sockets_reconnect, user_id=agent.pk)
    expect(page.locator("#conn")).not_to_have_attribute("data-state", "live")
    message = in_thread(customer_writes, ticket, "Found a note from the courier: try tomorrow?")
    seq = Event.objects.filter(message=message).values_list("id", flat=True).get()
    network.open = True

    expect(page.locator("#conn")).to_have_attribute("data-state", "live", timeout=15000)
    expect(page.locator(f"#m-{message.pk}")).to_contain_text("Found a note from the courier")
    row = page.locator(f".conv-item[data-conversation-id='{ticket.pk}'] .preview")
    expect(row).to_contain_text("Found a note from the courier")
    assert page.evaluate("window.__sameDocument") is True
    # Not over the socket: the page asked the events API for what it missed.
    assert seq not in [frame.get("seq") for frame in network.delivered]
    assert any(int(url.rpartition("after=")[2]) < seq for url in asked)
    assert page.evaluate("window.desk.lastSeq") == Event.objects.order_by("-id").values_list("id", flat=True).first()


def test_a_frame_lost_in_transit_is_noticed_by_the_gap_and_caught_up(page: Page, agent, network):
    opened = conversation_with_customer(agent, "Refund please", "I want my money back.")
    other = conversation_with_customer(agent, "Invoice copy", "Could you resend the invoice?")
    login(page, "alice")
    page.click(f"a[data-conversation='{opened.pk}']")
    expect(page.locator("#timeline")).to_contain_text("I want my money back.")
    page.evaluate("window.__sameDocument = true")
    asked = events_requests(page)
    before = page.evaluate("window.desk.lastSeq")

    # Every push about the open conversation is lost on the way; one about another arrives.
    network.lose = lambda frame: frame.get("type") == "event" and frame.get("conversation_id") == opened.pk
    message = in_thread(customer_writes, opened, "Bank details: see attachment.")
    missed = list(Event.objects.filter(conversation_id=opened.pk, id__gt=before).values_list("id", flat=True))
    later = in_thread(customer_writes, other, "Found it, thanks!")

    # The open conversation shows a message whose push never reached the page: only the
    # catch-up after the gap in the sequence can have told it.
    expect(page.locator(f"#m-{message.pk}")).to_contain_text("Bank details: see attachment.")
    expect(page.locator(f".conv-item[data-conversation-id='{other.pk}'] .preview")).to_contain_text("Found it, thanks!")
    assert sorted(frame["seq"] for frame in network.lost) == missed
    assert any(int(url.rpartition("after=")[2]) < min(missed) for url in asked)
    assert later.conversation_id == other.pk
    assert page.evaluate("window.desk.lastSeq") == Event.objects.order_by("-id").values_list("id", flat=True).first()
    assert page.evaluate("window.__sameDocument") is True
