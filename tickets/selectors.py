"""Reads for the dashboard and the API: permission-scoped, with fixed query counts."""
from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.db.models import Exists, F, OuterRef, Prefetch, Q, QuerySet
from django.http import Http404

from conversations.models import Event, Inbox, Message
from helpdesk.roles import MANAGERS_GROUP, is_manager
from tickets.models import Tag, Ticket

VIEWS = ("open", "mine", "unassigned", "pending", "solved", "all")
# Reverse one-to-one accessors of channels_in's per-kind configs, named without importing it.
INBOX_CHANNEL_CONFIGS = tuple(f"conversation__inbox__{name}" for name in ("email_channel", "sms_channel", "webchat_channel"))


def inbox_ids_for_agent(user: AbstractBaseUser) -> list[int] | None:
    """The inboxes an agent works; None means every inbox (managers)."""
    if is_manager(user):
        return None
    cached = getattr(user, "_inbox_ids", None)
    if cached is None:
        cached = list(Inbox.objects.filter(members=user).values_list("id", flat=True))
        user._inbox_ids = cached
    return cached


def tickets_for_agent(user: AbstractBaseUser) -> QuerySet[Ticket]:
    qs = Ticket.objects.all()
    inbox_ids = inbox_ids_for_agent(user)
    if inbox_ids is not None:
        qs = qs.filter(conversation__inbox_id__in=inbox_ids)
    return qs


def ticket_list(*, user: AbstractBaseUser, view: str = "open", status: str = "", inbox_id: int | None = None,
                assignee_id: int | None = None, channel: str = "") -> QuerySet[Ticket]:
    """The agent's inbox list, newest activity first. One query per page plus one for tags."""
    qs = tickets_for_agent(user)
    if view == "open":
        qs = qs.filter(status__in=Ticket.OPEN_STATUSES)
    elif view == "mine":
        qs = qs.filter(status__in=Ticket.OPEN_STATUSES, assignee=user)
    elif view == "unassigned":
        qs = qs.filter(status__in=Ticket.OPEN_STATUSES, assignee__isnull=True)
    elif view == "pending":
        qs = qs.filter(status=Ticket.Status.PENDING)
    elif view == "solved":
        qs = qs.filter(status__in=(Ticket.Status.SOLVED, Ticket.Status.CLOSED))
    if status:
        qs = qs.filter(status=status)
    if inbox_id:
        qs = qs.filter(conversation__inbox_id=inbox_id)
    if assignee_id:
        qs = qs.filter(assignee_id=assignee_id)
    if channel:
        qs = qs.filter(conversation__last_message_channel=channel)
    return (
        qs.select_related("conversation__contact", "conversation__inbox", "assignee", "team")
        .prefetch_related(Prefetch("tags", queryset=Tag.objects.order_by("name")))
        .order_by("-conversation__last_message_at", "-conversation_id")
    )


def ticket_get_for_agent(*, user: AbstractBaseUser, ticket_id: int) -> Ticket:
    """The ticket, or 404 when it does not exist or lies in an inbox the agent is not in.

    The inbox's channel configs come along (outer joins, no extra query): the reply channels
    and the header need them, and conversations must not import channels_in to ask.
    """
    qs = tickets_for_agent(user).select_related("conversation__contact", "assignee", "team", *INBOX_CHANNEL_CONFIGS)
    try:
        return qs.get(pk=ticket_id)
    except Ticket.DoesNotExist:
        raise Http404("No such conversation.") from None


def timeline(*, conversation_id: int) -> QuerySet[Message]:
    """Every message of a conversation in order, with authors and attachments: two queries."""
    return (
        Message.objects.filter(conversation_id=conversation_id)
        .select_related("author_user", "author_contact")
        .prefetch_related("attachments")
        .order_by("created_at", "id")
    )


def events_after(*, user: AbstractBaseUser, after: int, limit: int = 500) -> QuerySet[Event]:
    """Realtime events the agent may see with a sequence above `after` (catch-up)."""
    qs = Event.objects.filter(id__gt=after)
    inbox_ids = inbox_ids_for_agent(user)
    if inbox_ids is not None:
        qs = qs.filter(inbox_id__in=inbox_ids)
    return qs.order_by("id")[:limit]


# --- Read helpers for the REST API (tickets/apis.py) ---------------------------------------


def message_get_for_agent(*, user: AbstractBaseUser, message_id: int) -> Message:
    """A message, or 404 when it does not exist or its conversation lies outside the agent's inboxes."""
    qs = Message.objects.select_related("conversation", "author_user", "author_contact")
    inbox_ids = inbox_ids_for_agent(user)
    if inbox_ids is not None:
        qs = qs.filter(conversation__inbox_id__in=inbox_ids)
    try:
        return qs.get(pk=message_id)
    except Message.DoesNotExist:
        raise Http404("No such message.") from None


def assignee_get_for_ticket(*, ticket: Ticket, user_id: int) -> AbstractBaseUser | None:
    """The active user with this id if they may own the ticket (member of its inbox, or a
    manager); None otherwise. One query."""
    member = Inbox.members.through.objects.filter(user_id=OuterRef("pk"), inbox_id=ticket.conversation.inbox_id)
    manager = Group.objects.filter(user=OuterRef("pk"), name=MANAGERS_GROUP)
    return (
        get_user_model().objects.filter(pk=user_id, is_active=True)
        .filter(Q(is_superuser=True) | Exists(manager) | Exists(member))
        .first()
    )


def ticket_list_for_contact(*, user: AbstractBaseUser, contact_id: int, limit: int = 100) -> list[Ticket]:
    """A contact's conversations the agent may see, newest activity first (capped: a noisy
    auto-mailer can have thousands)."""
    return list(
        tickets_for_agent(user).filter(conversation__contact_id=contact_id)
        .select_related("conversation__inbox")
        .order_by(F("conversation__last_message_at").desc(nulls_last=True), "-conversation_id")[:limit]
    )
