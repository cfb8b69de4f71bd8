"""Triage of the conversation list in a real browser: a bulk action over a selection, and a
whole pass with the keyboard only (move, select, assign to me, solve, search)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from tests.browser.helpers import login, wait_until
from tests.factories import ContactFactory, EmailChannelFactory, MessageFactory, TicketFactory, UserFactory
from tickets.models import Ticket

pytestmark = pytest.mark.browser


@pytest.fixture
def desk(transactional_db):
    """Alice and Bob work one inbox holding four new conversations, newest first: #1 to #4."""
    channel = EmailChannelFactory(address="help@acme.test", inbox__name="Help")
    alice = UserFactory(username="alice", first_name="Alice", last_name="Agent")
    bob = UserFactory(username="bob", first_name="Bob", last_name="Baker")
    channel.inbox.members.add(alice, bob)
    now = timezone.now()
    tickets = []
    for n, (customer, text) in enumerate([("Ann", "The printer is on fire"), ("Ben", "Invoice is wrong"),
                                          ("Cid", "Cannot log in"), ("Dee", "Where is my parcel")]):
        ticket = TicketFactory(conversation__inbox=channel.inbox, conversation__subject=text,
                               conversation__contact=ContactFactory(name=customer),
                               conversation__last_message_at=now - timedelta(minutes=n))
        MessageFactory(conversation=ticket.conversation, author_contact=ticket.conversation.contact, text=text)
        tickets.append(ticket)
    return {"alice": alice, "bob": bob, "tickets": tickets}


def row(page: Page, ticket: Ticket):
    return page.locator(f"#conv-list li.conv-item[data-conversation-id='{ticket.pk}']")


def test_bulk_assign_three_selected_conversations(page: Page, desk):
    first, second, third, fourth = desk["tickets"]
    bob = desk["bob"]
    login(page, "alice")
    expect(page.locator("[data-count-for=unassigned]")).to_have_text("4")
    expect(page.get_by_test_id("bulk-bar")).to_be_hidden()

    for ticket in (first, second, third):
        row(page, ticket).get_by_test_id("conv-check").check()
    expect(page.get_by_test_id("bulk-count")).to_have_text("3 selected")
    page.get_by_test_id("bulk-assign").select_option(str(bob.pk))

    expect(page.get_by_test_id("bulk-result")).to_have_text("3 updated")
    for ticket in (first, second, third):
        expect(row(page, ticket).locator(".assignee")).to_have_text("Bob Baker")
    expect(row(page, fourth).locator(".assignee")).to_have_text("Unassigned")
    expect(page.locator("[data-count-for=unassigned]")).to_have_text("1")  # the tabs' counts follow
    assert dict(Ticket.objects.values_list("pk", "assignee_id")) == {first.pk: bob.pk, second.pk: bob.pk, third.pk: bob.pk,
                                                                   fourth.pk: None}
    # The selection stays for a next action until Escape clears it.
    expect(page.get_by_test_id("bulk-count")).to_have_text("3 selected")
    page.keyboard.press("Escape")
    expect(page.locator("#conv-list input.conv-check:checked")).to_have_count(0)


def test_keyboard_only_triage(page: Page, desk):
    first, second, third, fourth = desk["tickets"]
    alice = desk["alice"]
    login(page, "alice")
    conv = page.locator("#conv")
    keys = page.keyboard

    keys.press("j")
    expect(conv).to_have_attribute("data-conversation-id", str(first.pk))
    keys.press("j")
    expect(conv).to_have_attribute("data-conversation-id", str(second.pk))
    keys.press("k")
    expect(conv).to_have_attribute("data-conversation-id", str(first.pk))
    keys.press("x")
    expect(row(page, first)).to_have_attribute("data-checked", "1")
    for ticket in (second, third):
        keys.press("j")
        expect(conv).to_have_attribute("data-conversation-id", str(ticket.pk))
        keys.press("x")
        expect(row(page, ticket)).to_have_attribute("data-checked", "1")
    expect(page.get_by_test_id("bulk-count")).to_have_text("3 selected")

    keys.press("a")  # the selection, not just the open conversation, goes to Alice
    for ticket in (first, second, third):
        expect(row(page, ticket).locator(".assignee")).to_have_text("Alice Agent")
    expect(row(page, fourth).locator(".assignee")).to_have_text("Unassigned")
    expect(page.locator("[data-count-for=mine]")).to_have_text("3")

    keys.press("e")  # solved: they leave the Open view, and the selection with them
    for ticket in (first, second, third):
        expect(row(page, ticket)).to_have_count(0)
    expect(page.locator("#conv-list li.conv-item")).to_have_count(1)
    expect(page.get_by_test_id("bulk-count")).to_have_text("0 selected")
    wait_until(lambda: dict(Ticket.objects.values_list("pk", "status")) == {
        first.pk: "solved", second.pk: "solved", third.pk: "solved", fourth.pk: "new"}, timeout=5, what="solved", page=page)
    assert set(Ticket.objects.filter(assignee=alice).values_list("pk", flat=True)) == {first.pk, second.pk, third.pk}
    expect(row(page, fourth)).to_have_attribute("data-unread", "1")  # never opened

    # Without a selection the keys are the open conversation's again; shift+X takes all.
    keys.press("Shift+X")
    expect(row(page, fourth)).to_have_attribute("data-checked", "1")
    keys.press("Shift+X")
    expect(page.locator("#conv-list input.conv-check:checked")).to_have_count(0)

    # "/" searches every conversation, solved ones too; Escape clears the search.
    keys.press("/")
    expect(page.get_by_test_id("list-search")).to_be_focused()
    keys.type("printer")
    hit = row(page, first).get_by_test_id("search-hit")
    expect(hit.locator("mark")).to_have_text("printer")
    expect(page.locator("#conv-list li.conv-item")).to_have_count(1)
    keys.press("Escape")
    expect(page.locator("#conv-list li.conv-item")).to_have_count(1)
    expect(row(page, fourth)).to_be_visible()
