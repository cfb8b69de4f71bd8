"""Writes to tickets: creation from inbound messages, status, assignment, notes, bulk actions."""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from conversations import realtime
from conversations.models import Contact, Conversation, Inbox, Message
from conversations.services import (
    ApplicationError,
    IncomingMessage,
    attachments_store,
    conversation_create,
    conversation_summary_recompute,
    message_receive,
    note_create,
    reply_create,
    system_event_create,
)
from conversations.threading import ThreadMatch
from tickets import sla
from tickets.csat import csat_request
from tickets.mentions import mentioned_agents
from tickets.models import Notification, Tag, Team, Ticket
from tickets.notifications import notifications_create
from tickets.routing import routing_assign_arrival
from tickets.selectors import assignee_get_for_ticket, tickets_for_agent
from tickets.snooze import snooze_clear, snooze_until_parse, snooze_wake_on_customer_message, ticket_snooze


def inbound_message_record(*, inbox: Inbox, contact: Contact, incoming: IncomingMessage, thread: ThreadMatch,
                           reopen: bool = True) -> Message:
    """A customer message lands in its conversation (new or threaded), its ticket reopens
    (unless `reopen` is False: an answer to the satisfaction survey) and wakes from a snooze,
    the SLA clocks react and the assignee is notified. A new conversation in a routed inbox
    gets its agent here, in the same transaction.

    Call inside transaction.atomic(). Raises IntegrityError for a duplicate channel id.
    """
    conversation = thread.conversation
    if conversation is None:
        conversation = conversation_create(inbox=inbox, contact=contact, subject=incoming.subject, first_message=incoming)
        ticket = Ticket.objects.create(conversation=conversation, channel=incoming.channel)
        message = message_receive(conversation=conversation, contact=contact, incoming=incoming, thread_rule=thread.rule, first=True)
        attachments_store(message=message, attachments=incoming.attachments)
        sla.sla_ticket_created(ticket=ticket)
        routing_assign_arrival(ticket=ticket)  # notifies the agent it picks
        return message
    # The conversation row too: message_receive updates its summary.
    ticket = (Ticket.objects.select_for_update(of=("self", "conversation")).select_related("conversation", "assignee")
              .get(pk=conversation.pk))
    message = message_receive(conversation=conversation, contact=contact, incoming=incoming, thread_rule=thread.rule)
    attachments_store(message=message, attachments=incoming.attachments)
    if reopen:
        _ticket_reopen_on_customer_reply(ticket)
    snooze_wake_on_customer_message(ticket=ticket)
    sla.sla_customer_wrote(ticket=ticket, message=message)
    if ticket.assignee is not None:
        # Always, even while the agent has it open: the dashboard folds that into what it shows.
        notifications_create(users=[ticket.assignee], kind=Notification.Kind.MESSAGE, ticket=ticket,
                             text=f"New message on #{ticket.pk} from {contact.display_name}: {_preview(message.text_display or message.text)}")
    return message


def _preview(text: str, size: int = 120) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= size else f"{flat[:size - 1]}…"


def _ticket_reopen_on_customer_reply(ticket: Ticket) -> None:
    # An end-user message on a pending, on-hold or solved ticket puts it back to open
    # (Zendesk semantics); a closed ticket too, keeping one timeline per conversation.
    if ticket.status in (Ticket.Status.NEW, Ticket.Status.OPEN):
        return
    previous, previous_name = ticket.status, ticket.get_status_display()
    ticket.status = Ticket.Status.OPEN
    ticket.solved_at = None
    ticket.save(update_fields=["status", "solved_at", "updated_at"])
    system_event_create(conversation=ticket.conversation, text=f"Reopened by the customer's reply (was {previous_name}).")
    sla.sla_status_changed(ticket=ticket, previous=previous, by=None, reason="the customer replied")


def ticket_reply_create(*, ticket: Ticket, author: AbstractBaseUser, text: str, channel: str | None = None) -> Message:
    """An agent's public reply: queued for delivery, and it answers the SLA clocks."""
    with transaction.atomic():
        locked = Ticket.objects.select_for_update(of=("self",)).select_related("conversation__inbox").get(pk=ticket.pk)
        # The oldest customer message this reply answers (None when the agent spoke last).
        waiting_since = locked.conversation.waiting_since
        message = reply_create(conversation=locked.conversation, author=author, text=text, channel=channel)
        sla.sla_agent_replied(ticket=locked, message=message, waiting_since=waiting_since)
    return message


def ticket_set_priority(*, ticket: Ticket, priority: str, by: AbstractBaseUser) -> Ticket:
    if priority not in Ticket.Priority.values:
        raise ApplicationError(f"Unknown priority {priority!r}.")
    with transaction.atomic():
        locked = Ticket.objects.select_for_update(of=("self",)).select_related("conversation").get(pk=ticket.pk)
        if locked.priority == priority:
            return locked
        previous = locked.get_priority_display()
        locked.priority = priority
        locked.save(update_fields=["priority", "updated_at"])
        system_event_create(conversation=locked.conversation, author=by,
                            text=f"{_name(by)} changed the priority from {previous} to {locked.get_priority_display()}.")
        sla.sla_ticket_changed(ticket=locked, reason=f"{_name(by)} set the priority to {locked.get_priority_display()}")
        realtime.publish(type="conversation.updated", inbox_id=locked.conversation.inbox_id, conversation_id=locked.pk)
    return locked


def ticket_set_tags(*, ticket: Ticket, names: list[str], by: AbstractBaseUser) -> Ticket:
    """Replace the ticket's tags (created as needed); the SLA policy is matched again."""
    with transaction.atomic():
        locked = Ticket.objects.select_for_update(of=("self",)).select_related("conversation").get(pk=ticket.pk)
        wanted = sorted({name.strip().lower() for name in names if name.strip()})
        before = sorted(locked.tags.values_list("name", flat=True))
        if wanted == before:
            return locked
        tags = [Tag.objects.get_or_create(name=name)[0] for name in wanted]
        locked.tags.set(tags)
        system_event_create(conversation=locked.conversation, author=by,
                            text=f"{_name(by)} set the tags to {', '.join(wanted) or 'none'}.")
        sla.sla_ticket_changed(ticket=locked, reason=f"{_name(by)} changed the tags")
        realtime.publish(type="conversation.updated", inbox_id=locked.conversation.inbox_id, conversation_id=locked.pk)
    return locked


def ticket_set_status(*, ticket: Ticket, status: str, by: AbstractBaseUser) -> Ticket:
    if status not in Ticket.Status.values:
        raise ApplicationError(f"Unknown status {status!r}.")
    with transaction.atomic():
        locked = Ticket.objects.select_for_update().select_related("conversation").get(pk=ticket.pk)
        if locked.status == status:
            return locked
        previous, previous_name = locked.status, locked.get_status_display()
        locked.status = status
        done = status in (Ticket.Status.SOLVED, Ticket.Status.CLOSED)
        locked.solved_at = timezone.now() if done else None
        fields = ["status", "solved_at", "updated_at"]
        if done and locked.is_snoozed:
            fields += snooze_clear(locked)  # nothing left to come back for
        locked.save(update_fields=fields)
        system_event_create(conversation=locked.conversation, author=by,
                            text=f"{_name(by)} changed the status from {previous_name} to {locked.get_status_display()}.")
        sla.sla_status_changed(ticket=locked, previous=previous, by=by)
        if status == Ticket.Status.SOLVED:
            csat_request(ticket=locked, by=by)
        realtime.publish(type="conversation.updated", inbox_id=locked.conversation.inbox_id, conversation_id=locked.pk)
    return locked


def ticket_assign(*, ticket: Ticket, assignee: AbstractBaseUser | None, by: AbstractBaseUser, team: Team | None = None) -> Ticket:
    with transaction.atomic():
        # of=self: PostgreSQL refuses FOR UPDATE on the nullable side of the assignee outer join.
        locked = Ticket.objects.select_for_update(of=("self",)).select_related("conversation", "assignee").get(pk=ticket.pk)
        if locked.assignee_id == (assignee.pk if assignee else None) and (team is None or locked.team_id == team.pk):
            return locked
        newly_assigned = assignee is not None and locked.assignee_id != assignee.pk
        locked.assignee = assignee
        fields = ["assignee", "updated_at"]
        if team is not None:
            locked.team = team
            fields.append("team")
        if locked.status == Ticket.Status.NEW and assignee is not None:
            locked.status = Ticket.Status.OPEN
            fields.append("status")
        locked.save(update_fields=fields)
        if assignee is None:
            text = f"{_name(by)} unassigned the conversation."
        elif assignee.pk == by.pk:
            text = f"{_name(by)} took the conversation."
        else:
            text = f"{_name(by)} assigned the conversation to {_name(assignee)}."
        system_event_create(conversation=locked.conversation, author=by, text=text)
        if newly_assigned and assignee.pk != by.pk:
            notifications_create(users=[assignee], kind=Notification.Kind.ASSIGNMENT, ticket=locked,
                                 text=f"{_name(by)} assigned you #{locked.pk} {locked.conversation.subject}")
        realtime.publish(type="conversation.updated", inbox_id=locked.conversation.inbox_id, conversation_id=locked.pk)
    return locked


def ticket_set_team(*, ticket: Ticket, team: Team | None, by: AbstractBaseUser) -> Ticket:
    """Transfer the conversation to a team (None: to no team). An assignee who is not in the
    new team lets go of it, so it waits in that team's queue instead of with someone the team
    cannot see working on it."""
    with transaction.atomic():
        locked = (Ticket.objects.select_for_update(of=("self",)).select_related("conversation", "assignee", "team")
                  .get(pk=ticket.pk))
        if locked.team_id == (team.pk if team else None):
            return locked
        fields = ["team", "updated_at"]
        if team is None:
            text = f"{_name(by)} removed the conversation from team {locked.team.name}."
        else:
            text = f"{_name(by)} transferred the conversation to team {team.name}"
            if locked.assignee_id and not team.members.filter(pk=locked.assignee_id).exists():
                text += f" ({_name(locked.assignee)} is not in it: unassigned)"
                locked.assignee = None
                fields.append("assignee")
            text += "."
        locked.team = team
        locked.save(update_fields=fields)
        system_event_create(conversation=locked.conversation, author=by, text=text)
        realtime.publish(type="conversation.updated", inbox_id=locked.conversation.inbox_id, conversation_id=locked.pk)
    return locked


def ticket_note_create(*, ticket: Ticket, author: AbstractBaseUser, text: str) -> Message:
    """An internal note; each agent it @mentions who can see the conversation is notified
    once (never the author)."""
    with transaction.atomic():
        message = note_create(conversation=ticket.conversation, author=author, text=text)
        mentioned = mentioned_agents(ticket=ticket, author=author, text=text)
        if mentioned:
            notifications_create(users=mentioned, kind=Notification.Kind.MENTION, ticket=ticket,
                                 text=f"{_name(author)} mentioned you on #{ticket.pk}: {_preview(text)}")
    return message


def _name(user: AbstractBaseUser | None) -> str:
    if user is None:
        return "nobody"
    return user.get_full_name() or user.get_username()


def conversation_merge(*, source: Ticket, target: Ticket, by: AbstractBaseUser) -> Ticket:
    """Merge conversation `source` into `target`: its messages (with their attachments) move
    and interleave by time; the source is closed and points at the target (old links follow).

    Web chat visitors of the source continue in the target. Both timelines record the merge;
    both inboxes get a conversation.updated event. Permission to see both is the caller's check.
    """
    if source.pk == target.pk:
        raise ApplicationError("A conversation cannot be merged into itself.")
    with transaction.atomic():
        locked = {t.pk: t for t in Ticket.objects.select_for_update(of=("self",)).select_related("conversation")
                  .filter(pk__in=[source.pk, target.pk]).order_by("pk")}
        source, target = locked[source.pk], locked[target.pk]
        if target.conversation.merged_into_id is not None:
            raise ApplicationError(f"#{target.pk} was merged into #{target.conversation.merged_into_id}: merge into that one instead.")
        if source.conversation.merged_into_id is not None:
            raise ApplicationError(f"#{source.pk} was already merged into #{source.conversation.merged_into_id}.")
        now = timezone.now()
        moved = Message.objects.filter(conversation_id=source.pk).update(conversation_id=target.pk)
        source.conversation.visitors.update(conversation_id=target.pk)  # channels_in.Visitor (reverse accessor)
        Conversation.objects.filter(pk=source.pk).update(merged_into_id=target.pk, merged_at=now)
        if source.status != Ticket.Status.CLOSED:
            source.status, source.solved_at = Ticket.Status.CLOSED, now
            source.save(update_fields=["status", "solved_at", "updated_at", *(snooze_clear(source) if source.is_snoozed else [])])
        sla.sla_merged_away(ticket=source, into_id=target.pk, by=by, now=now)
        who = _name(by)
        system_event_create(conversation=source.conversation, author=by, text=f"{who} merged this conversation into #{target.pk}.")
        noun = "message" if moved == 1 else "messages"
        system_event_create(conversation=target.conversation, author=by,
                            text=f"{who} merged #{source.pk} into this conversation: {moved} {noun}.")
        for ticket in (source, target):
            conversation_summary_recompute(conversation_id=ticket.pk)
            realtime.publish(type="conversation.updated", inbox_id=ticket.conversation.inbox_id, conversation_id=ticket.pk)
    return target


# Bulk actions ------------------------------------------------------------------------------

BULK_ACTIONS = ("assign", "team", "status", "priority", "tag", "untag", "snooze")
BULK_MAX = 500
TAG_NAME = re.compile(r"^[-a-z0-9_]{1,60}$")


@dataclass
class BulkResult:
    updated: int = 0
    skipped: list[dict[str, object]] = field(default_factory=list)


def tickets_bulk_apply(*, user: AbstractBaseUser, ids: list[int], action: str, value: str) -> BulkResult:
    """Apply one action to many conversations, each through the service of the single action
    and within what the agent may see (tickets_for_agent, as ticket_get_for_agent).

    Each conversation is its own transaction: one that fails is skipped with the reason and
    the others keep their change. Raises ApplicationError, changing nothing, for an unknown
    action, a bad value, no conversations or too many.
    """
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        raise ApplicationError("Select at least one conversation.")
    if len(wanted) > BULK_MAX:
        raise ApplicationError(f"At most {BULK_MAX} conversations at once.")
    apply = _bulk_action(user=user, action=action, value=value)
    visible = tickets_for_agent(user).filter(pk__in=wanted).select_related("conversation__inbox")
    if action in ("tag", "untag"):
        visible = visible.prefetch_related("tags")
    found = {ticket.pk: ticket for ticket in visible}
    result = BulkResult()
    for pk in wanted:
        ticket = found.get(pk)
        if ticket is None:
            result.skipped.append({"id": pk, "reason": "No such conversation in your inboxes."})
            continue
        try:
            with transaction.atomic():
                apply(ticket)
        except ApplicationError as err:
            result.skipped.append({"id": pk, "reason": str(err)})
        else:
            result.updated += 1
    return result


def _bulk_action(*, user: AbstractBaseUser, action: str, value: str) -> Callable[[Ticket], object]:
    """Check the action and its value once, for all the conversations; returns what to do to each."""
    value = (value or "").strip()
    if action == "assign":
        return _bulk_assign(user=user, value=value)
    if action == "team":
        team = None
        if value:
            team = Team.objects.filter(pk=int(value)).first() if value.isdigit() else None
            if team is None:
                raise ApplicationError(f"No team {value!r}.")
        return lambda ticket: ticket_set_team(ticket=ticket, team=team, by=user)
    if action == "status":
        if value not in Ticket.Status.values:
            raise ApplicationError(f"Unknown status {value!r}: one of {', '.join(Ticket.Status.values)}.")
        return lambda ticket: ticket_set_status(ticket=ticket, status=value, by=user)
    if action == "priority":
        if value not in Ticket.Priority.values:
            raise ApplicationError(f"Unknown priority {value!r}: one of {', '.join(Ticket.Priority.values)}.")
        return lambda ticket: ticket_set_priority(ticket=ticket, priority=value, by=user)
    if action in ("tag", "untag"):
        name = value.lower()
        if not TAG_NAME.match(name):
            raise ApplicationError("A tag is made of letters, digits, - and _ (up to 60).")
        if action == "tag":
            return lambda ticket: ticket_set_tags(ticket=ticket, names=[t.name for t in ticket.tags.all()] + [name], by=user)
        return lambda ticket: ticket_set_tags(ticket=ticket, names=[t.name for t in ticket.tags.all() if t.name != name], by=user)
    if action == "snooze":
        until = snooze_until_parse(value)
        return lambda ticket: ticket_snooze(ticket=ticket, until=until, by=user)
    raise ApplicationError(f"Unknown action {action!r}: one of {', '.join(BULK_ACTIONS)}.")


def _bulk_assign(*, user: AbstractBaseUser, value: str) -> Callable[[Ticket], object]:
    if value == "":
        return lambda ticket: ticket_assign(ticket=ticket, assignee=None, by=user)
    if value == "me":
        # Whoever sees a conversation may take it (a member of its inbox, or a manager).
        return lambda ticket: ticket_assign(ticket=ticket, assignee=user, by=user)
    if not value.isdigit():
        raise ApplicationError(f"Assign to a user id, \"me\" or \"\" (nobody), not {value!r}.")

    def assign(ticket: Ticket) -> Ticket:
        # Never someone who could not see the conversation: checked per inbox.
        assignee = assignee_get_for_ticket(ticket=ticket, user_id=int(value))
        if assignee is None:
            raise ApplicationError(f"User {value} does not work in {ticket.conversation.inbox.name}.")
        return ticket_assign(ticket=ticket, assignee=assignee, by=user)

    return assign
