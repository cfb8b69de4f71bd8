"""The demo data behind `make run`: idempotent, consistent, varied, and quiet (no mail, no tasks)."""
from __future__ import annotations

from datetime import timedelta
from io import StringIO
from itertools import takewhile

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.management import CommandError, call_command
from django.utils import timezone

from channels_in.models import EmailChannel, InboundEvent
from conversations.models import Contact, ContactIdentity, Conversation, Event, Inbox, Message
from helpdesk.roles import is_manager
from tickets.models import Tag, Team, Ticket

pytestmark = pytest.mark.django_db

MODELS = (get_user_model(), Inbox, EmailChannel, Team, Tag, Contact, ContactIdentity, Conversation, Ticket, Message, Event)
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
        assert set(outbound.values_list("delivery_status", flat=True)) == {"sent", "delivered", "failed"}
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
