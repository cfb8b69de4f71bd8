"""Writes to tickets: creation from inbound messages, status, assignment."""
from __future__ import annotations

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
    reply_create,
    system_event_create,
)
from conversations.threading import ThreadMatch
from tickets import sla
from tickets.csat import csat_request
from tickets.models import Tag, Team, Ticket


def inbound_message_record(*, inbox: Inbox, contact: Contact, incoming: IncomingMessage, thread: ThreadMatch,
                           reopen: bool = True) -> Message:
    """A customer message lands in its conversation (new or threaded), its ticket reopens
    (unless `reopen` is False: an answer to the satisfaction survey) and the SLA clocks react.

    Call inside transaction.atomic(). Raises IntegrityError for a duplicate channel id.
    """
    conversation = thread.conversation
    if conversation is None:
        conversation = conversation_create(inbox=inbox, contact=contact, subject=incoming.subject)
        ticket = Ticket.objects.create(conversation=conversation, channel=incoming.channel)
        message = message_receive(conversation=conversation, contact=contact, incoming=incoming, thread_rule=thread.rule)
        attachments_store(message=message, attachments=incoming.attachments)
        sla.sla_ticket_created(ticket=ticket)
        return message
    ticket = Ticket.objects.select_for_update().select_related("conversation").get(pk=conversation.pk)
    message = message_receive(conversation=conversation, contact=contact, incoming=incoming, thread_rule=thread.rule)
    attachments_store(message=message, attachments=incoming.attachments)
    if reopen:
        _ticket_reopen_on_customer_reply(ticket)
    sla.sla_customer_wrote(ticket=ticket, message=message)
    return message


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
        locked.solved_at = timezone.now() if status in (Ticket.Status.SOLVED, Ticket.Status.CLOSED) else None
        locked.save(update_fields=["status", "solved_at", "updated_at"])
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
        realtime.publish(type="conversation.updated", inbox_id=locked.conversation.inbox_id, conversation_id=locked.pk)
    return locked


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
            source.save(update_fields=["status", "solved_at", "updated_at"])
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
