"""Snooze and its wake-up, and round-robin routing, in a real browser against the real processes.

Snooze: an agent snoozes a conversation from the keyboard menu; it leaves the list at once;
a Celery worker and beat (SNOOZE_INTERVAL_SECONDS=1) wake it when its time comes, and it
comes back to the list, with the wake-up in its timeline and a reminder on the bell, without
a reload. The menu's shortest snooze is an hour: the test then moves the wake-up time to
now in the database, as if the hour had passed, and leaves the rest to beat and the worker.

Routing: ann is online with room for two, ben is away. New conversations go to ann until she
is full; the next one waits. When ben goes online from the top bar, the waiting one is his at
once (his Mine view and bell show it), and the next arrival is his too.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from playwright.sync_api import Page, expect

from conversations.models import Channel, Message
from conversations.services import IncomingMessage
from conversations.threading import ThreadMatch
from tests.browser.conftest import CeleryProcesses
from tests.browser.helpers import in_thread, login
from tests.factories import ContactFactory, EmailChannelFactory, MessageFactory, TicketFactory, UserFactory
from tickets.models import AgentStatus, InboxRouting, Ticket
from tickets.services import inbound_message_record

pytestmark = pytest.mark.browser

WAKE_WITHIN_MS = 15000  # beat every second, the worker, the push and the refetch


def watch_for_problems(page: Page) -> list[str]:
    """Script errors, CSP violations and failed requests, collected as they happen."""
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(f"{msg.text} {msg.location['url']}")
            if msg.type == "error" and not msg.location["url"].endswith("/favicon.ico") else None)
    page.on("pageerror", lambda err: problems.append(str(err)))
    return problems


def test_snooze_from_the_menu_leaves_the_list_and_the_wake_up_brings_it_back(page: Page, celery_processes: CeleryProcesses):
    inbox = EmailChannelFactory(address="help@acme.test", inbox__name="Help").inbox
    alice = UserFactory(username="alice", first_name="Alice", last_name="Agent")
    inbox.members.add(alice)
    contact = ContactFactory(name="Jane Customer")
    ticket = TicketFactory(conversation__inbox=inbox, conversation__contact=contact, conversation__subject="Printer on fire",
                           conversation__last_message_at=timezone.now(), status=Ticket.Status.OPEN, assignee=alice)
    MessageFactory(conversation=ticket.conversation, author_contact=contact, text="It is on fire")
    celery_processes.env["SNOOZE_INTERVAL_SECONDS"] = "1"
    celery_processes.worker("snooze-worker", queues="default")
    celery_processes.beat("snooze-beat")
    problems = watch_for_problems(page)

    login(page, "alice")
    row = page.locator(f".conv-item[data-conversation-id='{ticket.pk}']")
    page.click(f"a[data-conversation='{ticket.pk}']")
    expect(page.locator("#conv")).to_have_attribute("data-conversation-id", str(ticket.pk))
    page.locator("#timeline").click()  # the keys act on the page, not inside a field
    page.keyboard.press("s")
    expect(page.get_by_test_id("snooze-menu")).to_have_attribute("open", "")
    page.keyboard.press("1")  # for 1 hour

    expect(page.get_by_test_id("snoozed").first).to_contain_text("Snoozed until")
    expect(row).to_have_count(0)  # out of the Open view at once
    snoozed = Ticket.objects.get(pk=ticket.pk)
    assert snoozed.snoozed_by == alice and timedelta(minutes=59) < snoozed.snoozed_until - timezone.now() <= timedelta(hours=1)
    assert snoozed.status == Ticket.Status.OPEN

    # The hour passes.
    Ticket.objects.filter(pk=ticket.pk).update(snoozed_until=timezone.now())

    expect(row).to_have_count(1, timeout=WAKE_WITHIN_MS)
    expect(page.locator("#timeline")).to_contain_text("Woken up: the snooze until", timeout=WAKE_WITHIN_MS)
    expect(page.locator("#conv-head [data-testid=snoozed]")).to_have_count(0)
    expect(page.get_by_test_id("bell-count")).to_have_text("1")
    woken = Ticket.objects.get(pk=ticket.pk)
    assert not woken.is_snoozed and woken.status == Ticket.Status.OPEN
    assert Message.objects.filter(conversation_id=ticket.pk, text__startswith="Woken up").count() == 1
    assert problems == []


def arrive(inbox, subject: str) -> int:
    """A customer's first message, recorded as the inbound worker does (pushes via Redis)."""
    contact = ContactFactory()
    incoming = IncomingMessage(channel=Channel.EMAIL, from_address=contact.email, to_address="sales@acme.test",
                               subject=subject, text=f"About {subject}", external_id=f"<{subject}@mail.example.org>")
    with transaction.atomic():
        message = inbound_message_record(inbox=inbox, contact=contact, incoming=incoming,
                                         thread=ThreadMatch(conversation=None, rule="new"))
    return message.conversation_id


def owners(ids: list[int]) -> list[str | None]:
    by_id = dict(Ticket.objects.filter(pk__in=ids).values_list("pk", "assignee__username"))
    return [by_id[pk] for pk in ids]


def test_round_robin_respects_capacity_and_availability(page: Page):
    inbox = EmailChannelFactory(address="sales@acme.test", inbox__name="Sales").inbox
    ann = UserFactory(username="ann", first_name="Ann", last_name="Archer")
    ben = UserFactory(username="ben", first_name="Ben", last_name="Baker")
    inbox.members.add(ann, ben)
    InboxRouting.objects.create(inbox=inbox, mode=InboxRouting.Mode.ROUND_ROBIN)
    AgentStatus.objects.create(user=ann, availability="online", capacity=2)
    AgentStatus.objects.create(user=ben, availability="away", capacity=2)
    problems = watch_for_problems(page)

    first = [in_thread(arrive, inbox, subject) for subject in ("Quote", "Invoice", "Upgrade")]
    assert owners(first) == ["ann", "ann", None]  # ann is full; ben is away

    login(page, "ben")
    availability = page.get_by_test_id("availability")
    expect(availability).to_have_value("away")
    page.click("a[data-view-tab=mine]")
    expect(page.locator(".conv-item")).to_have_count(0)

    availability.select_option("online")

    mine = page.locator(f".conv-item[data-conversation-id='{first[2]}']")
    expect(mine).to_contain_text("Upgrade")  # routed to him at once, shown live
    expect(page.get_by_test_id("bell-count")).to_have_text("1")
    expect(availability).to_have_value("online")
    assert owners(first) == ["ann", "ann", "ben"]
    assert AgentStatus.objects.get(user=ben).availability == "online"

    later = [in_thread(arrive, inbox, subject) for subject in ("Refund", "Renewal")]
    # ann is still full: ben takes the next up to his capacity, then it waits again.
    assert owners(later) == ["ben", None]
    expect(page.locator(".conv-item")).to_have_count(2)
    expect(page.get_by_test_id("bell-count")).to_have_text("2")
    assert problems == []
