"""The demo data behind `make run`: idempotent, consistent, varied, and quiet (no mail, no tasks)."""
from __future__ import annotations

import re
from datetime import datetime, timedelta
from io import StringIO
from itertools import takewhile
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.management import CommandError, call_command
from django.utils import timezone

from channels_in.management.commands.seed_demo import Command
from channels_in.models import EmailChannel, InboundEvent, SmsChannel, Visitor, WebChatChannel
from conversations.models import Contact, ContactIdentity, Conversation, Event, Inbox, Message
from helpdesk.roles import is_manager
from tickets.calendars import is_open_at, working_hours
from tickets.models import BusinessCalendar, Tag, Team, Ticket

pytestmark = pytest.mark.django_db

MODELS = (get_user_model(), Inbox, EmailChannel, SmsChannel, WebChatChannel, Visitor, BusinessCalendar, Team, Tag, Contact,
          ContactIdentity, Conversation, Ticket, Message, Event)
FACING = (Message.Kind.INBOUND, Message.Kind.OUTBOUND)


def seed() -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in MODELS}


class TestSeedDemo:
    def test_second_run_changes_nothing(self, tasks) -> None:  # noqa: ANN001
        first = seed()
        after_first = counts()
        second = seed()

        assert counts() == after_first
        assert "Seeded demo data" in first
        assert "already present" in second
        assert 45 <= after_first["Conversation"] <= 60
        assert after_first["Ticket"] == after_first["Conversation"]
        # Nothing was queued for delivery or sent, and no provider event was faked.
        assert tasks.sent == []
        assert mail.outbox == []
        assert InboundEvent.objects.count() == 0

    def test_denormalised_fields_match_the_timeline(self) -> None:
        seed()
        for conversation in Conversation.objects.all():
            messages = list(conversation.messages.order_by("created_at", "id"))
            facing = [m for m in messages if m.kind in FACING]
            last = facing[-1]
            # The customer waits since their oldest message after the agent's last reply.
            unanswered = list(takewhile(lambda m: m.kind == Message.Kind.INBOUND, reversed(facing)))

            assert messages[0].kind == Message.Kind.INBOUND
            assert conversation.created_at == messages[0].created_at
            assert conversation.message_count == len(messages)
            assert conversation.last_message_at == last.created_at
            assert conversation.last_message_channel == last.channel
            assert conversation.last_message_preview == (last.text_display or last.text).strip().replace("\n", " ")[:200]
            assert conversation.waiting_since == (unanswered[-1].created_at if unanswered else None)

    def test_history_is_recent_and_in_order(self) -> None:
        now = timezone.now()
        seed()
        for conversation in Conversation.objects.all():
            times = [m.created_at for m in conversation.messages.order_by("id")]
            assert times == sorted(times), conversation
            assert now - timedelta(days=15) < times[0] and times[-1] < now
            ticket = conversation.ticket
            assert ticket.created_at == conversation.created_at
            assert (ticket.solved_at is not None) == (ticket.status in (Ticket.Status.SOLVED, Ticket.Status.CLOSED))

    def test_history_is_varied(self) -> None:
        seed()
        tickets = Ticket.objects.all()
        outbound = Message.objects.filter(kind=Message.Kind.OUTBOUND)
        failed = outbound.get(delivery_status=Message.DeliveryStatus.FAILED)

        assert set(tickets.values_list("status", flat=True)) == set(Ticket.Status.values)
        assert len(set(tickets.values_list("priority", flat=True))) >= 3
        assert set(tickets.values_list("assignee__username", flat=True)) == {None, "alice", "bob", "carol"}
        assert set(tickets.values_list("team__name", flat=True)) == {None, "Billing", "Technical"}
        assert Tag.objects.filter(tickets__isnull=False).distinct().count() >= 10
        assert set(outbound.values_list("delivery_status", flat=True)) == {"sent", "delivered", "failed", "read"}
        assert "550 5.1.1" in failed.delivery_error
        assert not outbound.filter(external_id__isnull=True).exclude(pk=failed.pk).exists()
        assert Message.objects.filter(kind=Message.Kind.NOTE).exists()
        assert Message.objects.filter(kind=Message.Kind.SYSTEM, text__startswith="Reopened by the customer").exists()
        # Customer replies quote the agent, and the timeline shows only their new words.
        quoted = Message.objects.filter(kind=Message.Kind.INBOUND, text__contains="Acme Support <support@acme.test>")
        assert quoted.count() >= 10
        for message in quoted:
            assert "support@acme.test" not in message.text_display
            assert message.in_reply_to

    def test_demo_logins_and_roles(self) -> None:
        output = seed()
        users = {u.username: u for u in get_user_model().objects.all()}
        inbox = EmailChannel.objects.select_related("inbox").get(address="support@acme.test").inbox

        for username in ("alice", "bob", "carol", "maria", "admin"):
            assert users[username].check_password("demo1234")
            assert username in output
        assert is_manager(users["maria"]) and not is_manager(users["alice"])
        assert users["admin"].is_superuser and users["admin"].is_staff
        assert set(inbox.members.values_list("username", flat=True)) == {"alice", "bob", "carol", "maria"}
        assert inbox.name == "Acme Support"

    def test_existing_account_is_left_alone(self) -> None:
        get_user_model().objects.create_user(username="admin", password="the operator's own")
        seed()
        admin = get_user_model().objects.get(username="admin")
        assert admin.check_password("the operator's own")
        assert not admin.is_superuser

    def test_refuses_production_settings(self, settings) -> None:  # noqa: ANN001
        settings.SETTINGS_MODULE = "helpdesk.settings.production"
        with pytest.raises(CommandError, match="production"):
            seed()
        assert counts()["Conversation"] == 0


class TestSeedDemoWebChat:
    def test_web_chat_inbox_answers_by_chat_email_and_sms(self) -> None:
        output = seed()
        widget = WebChatChannel.objects.select_related("inbox", "calendar").get(inbox__name="Website chat")
        inbox = widget.inbox

        assert inbox.kind == "webchat"
        assert widget.origins == ["*"] and widget.pre_chat_form
        assert (widget.calendar.time_zone, len(widget.calendar.intervals)) == ("Europe/Berlin", 5)
        assert is_open_at(working_hours(widget.calendar), datetime(2026, 3, 2, 9, 30, tzinfo=ZoneInfo("Europe/Berlin")))  # a Monday
        assert not is_open_at(working_hours(widget.calendar), datetime(2026, 3, 7, 12, 0, tzinfo=ZoneInfo("Europe/Berlin")))  # a Saturday
        assert inbox.email_channel.address == "chat@acme.test"
        sms = inbox.sms_channel
        assert re.fullmatch(r"AC[0-9a-f]{32}", sms.account_sid) and sms.auth_token
        assert re.fullmatch(r"\+1\d{3}5550\d{3}", sms.phone_number)
        assert set(inbox.members.values_list("username", flat=True)) == {"alice", "bob", "carol", "maria"}
        snippet = f'<script src="http://127.0.0.1:8000/static/widget/widget.js" data-key="{widget.public_key}" async></script>'
        assert snippet in output

    def test_chat_and_sms_conversations_show_the_new_channels(self) -> None:
        seed()
        inbox = Inbox.objects.get(name="Website chat")
        messages = Message.objects.filter(conversation__inbox=inbox)

        assert 3 <= Conversation.objects.filter(inbox=inbox).count() <= 8
        assert {"webchat", "sms", "email"} <= set(messages.values_list("channel", flat=True))
        assert messages.filter(kind=Message.Kind.OUTBOUND, delivery_status="read").exists()  # "Seen"
        # A number that texted STOP: the consent the agent sees, and the reason a reply is refused.
        stopped = ContactIdentity.objects.get(kind="phone", sms_opted_out_at__isnull=False)
        assert stopped.sms_consent_keyword == "STOP"
        # One customer across channels: a chat answered by email, in the same conversation.
        crossed = Conversation.objects.get(inbox=inbox, messages__channel="email")
        assert set(crossed.messages.filter(kind=Message.Kind.INBOUND).values_list("channel", flat=True)) == {"webchat", "email"}
        assert crossed.contact.identities.filter(kind="email", address=crossed.contact.email).exists()
        assert Visitor.objects.filter(conversation=crossed, external_user_id__gt="").exists()
        # Chat visitors' pre-chat emails are not identities (nothing proved them).
        for visitor in Visitor.objects.exclude(conversation=crossed).exclude(email=""):
            assert not ContactIdentity.objects.filter(kind="email", address=visitor.email).exists()

    def test_a_desk_seeded_before_the_web_chat_inbox_gets_it_once(self) -> None:
        Command()._seed_without_pushes(email=True, chat=False)  # as the email-only version left it
        assert not Inbox.objects.filter(name="Website chat").exists()
        before = Conversation.objects.count()

        output = seed()
        after = counts()
        seed()

        assert "Seeded demo data" in output
        assert Inbox.objects.filter(name="Website chat").count() == 1
        assert Conversation.objects.count() > before
        assert counts() == after
