"""Auto-assignment: per inbox, round robin or least loaded, among the inbox's members who
are online and below their capacity.

`routing_assign_waiting` assigns the oldest unassigned new/open conversations of each routed
inbox. Beat runs it periodically, so waiting conversations are assigned as capacity frees up
(a solve, an agent coming online), and `routing_assign_arrival` assigns a new conversation
at once, inside its inbound transaction. Routing of one inbox is serialised by a lock on its
InboxRouting row; each assignment is a conditional update of a still-unassigned ticket, so
two runs never assign one conversation twice.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from conversations import realtime
from conversations.services import ApplicationError, system_event_create
from tickets.models import AgentStatus, InboxRouting, Notification, Ticket
from tickets.notifications import notifications_create

WAITING = (Ticket.Status.NEW, Ticket.Status.OPEN)


@dataclass
class Candidate:
    user: AbstractBaseUser
    capacity: int
    load: int
    last_assigned_at: datetime | None

    @property
    def has_room(self) -> bool:
        return self.load < self.capacity


def candidates(*, inbox_id: int) -> list[Candidate]:
    """The inbox's members who are online, with their open load, by user id. Two queries."""
    statuses = {s.user_id: s for s in AgentStatus.objects.filter(
        availability=AgentStatus.Availability.ONLINE, user__is_active=True, user__inboxes=inbox_id).select_related("user")}
    if not statuses:
        return []
    loads = dict(Ticket.objects.filter(assignee_id__in=statuses, status__in=Ticket.OPEN_STATUSES)
                 .values("assignee_id").annotate(n=Count("pk")).values_list("assignee_id", "n"))
    return [Candidate(user=s.user, capacity=s.capacity, load=loads.get(uid, 0), last_assigned_at=s.last_assigned_at)
            for uid, s in sorted(statuses.items())]


def pick(*, mode: str, pool: list[Candidate], last_agent_id: int | None) -> Candidate | None:
    """Round robin: the next agent with room after the last one served (by user id, wrapping).
    Least loaded: the fewest open conversations, then whoever waited longest for one."""
    room = [c for c in pool if c.has_room]
    if not room:
        return None
    if mode == InboxRouting.Mode.ROUND_ROBIN:
        after = [c for c in room if last_agent_id is None or c.user.pk > last_agent_id]
        return (after or room)[0]
    return min(room, key=lambda c: (c.load, c.last_assigned_at is not None, c.last_assigned_at or timezone.now(), c.user.pk))


def routing_assign_waiting(*, inbox_id: int | None = None, limit: int = 200) -> int:
    """Assign waiting conversations of every routed inbox (or one); returns how many."""
    routings = InboxRouting.objects.exclude(mode=InboxRouting.Mode.MANUAL)
    if inbox_id is not None:
        routings = routings.filter(inbox_id=inbox_id)
    return sum(_route_inbox(routing_id=pk, limit=limit) for pk in routings.values_list("pk", flat=True))


def _route_inbox(*, routing_id: int, limit: int) -> int:
    with transaction.atomic():
        routing = InboxRouting.objects.select_for_update().filter(pk=routing_id).exclude(mode=InboxRouting.Mode.MANUAL).first()
        if routing is None:
            return 0
        # Snoozed conversations are out of the queue until they wake.
        waiting = list(Ticket.objects.filter(conversation__inbox_id=routing.inbox_id, assignee__isnull=True, status__in=WAITING,
                                             conversation__merged_into__isnull=True, snoozed_at__isnull=True)
                       .order_by("created_at", "pk").values_list("pk", flat=True)[:limit])
        if not waiting:
            return 0
        pool = candidates(inbox_id=routing.inbox_id)
        assigned = 0
        for ticket_id in waiting:
            chosen = pick(mode=routing.mode, pool=pool, last_agent_id=routing.last_agent_id)
            if chosen is None:
                break  # everyone is full or away: the next run tries again
            if _assign(ticket_id=ticket_id, agent=chosen.user, how=routing.get_mode_display().lower()):
                _served(routing=routing, chosen=chosen)
                assigned += 1
        routing.save(update_fields=["last_agent"])
    return assigned


def routing_assign_arrival(*, ticket: Ticket) -> AbstractBaseUser | None:
    """A new conversation in a routed inbox gets an agent at once: in the caller's
    transaction (the inbound processing), with no task and no wait for the periodic run.
    Returns the agent, or None (a manual inbox, nobody online with room: the periodic run
    tries again as capacity frees up).

    Takes the inbox's routing lock like the periodic run, so the two never pick from stale
    loads, and assigns through the same conditional update.
    """
    routing = (InboxRouting.objects.select_for_update().filter(inbox_id=ticket.conversation.inbox_id)
               .exclude(mode=InboxRouting.Mode.MANUAL).first())
    if routing is None:
        return None
    chosen = pick(mode=routing.mode, pool=candidates(inbox_id=routing.inbox_id), last_agent_id=routing.last_agent_id)
    if chosen is None or not _assign(ticket_id=ticket.pk, agent=chosen.user, how=routing.get_mode_display().lower()):
        return None
    _served(routing=routing, chosen=chosen)
    routing.save(update_fields=["last_agent"])
    return chosen.user


def _served(*, routing: InboxRouting, chosen: Candidate) -> None:
    """Book an assignment: the agent's load and turn, for the next pick."""
    now = timezone.now()
    chosen.load += 1
    chosen.last_assigned_at = now
    routing.last_agent = chosen.user
    AgentStatus.objects.filter(user=chosen.user).update(last_assigned_at=now)


def _assign(*, ticket_id: int, agent: AbstractBaseUser, how: str) -> bool:
    """Give a still-unassigned waiting ticket to the agent; False when someone was faster."""
    changed = Ticket.objects.filter(pk=ticket_id, assignee__isnull=True, status__in=WAITING, snoozed_at__isnull=True).update(assignee=agent)
    if not changed:
        return False
    ticket = Ticket.objects.select_related("conversation").get(pk=ticket_id)
    if ticket.status == Ticket.Status.NEW:
        Ticket.objects.filter(pk=ticket_id).update(status=Ticket.Status.OPEN)
    name = agent.get_full_name() or agent.get_username()
    system_event_create(conversation=ticket.conversation, text=f"Assigned to {name} ({how}).")
    notifications_create(users=[agent], kind=Notification.Kind.ASSIGNMENT, ticket=ticket,
                         text=f"Assigned to you: #{ticket.pk} {ticket.conversation.subject}")
    realtime.publish(type="conversation.updated", inbox_id=ticket.conversation.inbox_id, conversation_id=ticket.pk)
    return True


def agent_availability_set(*, user: AbstractBaseUser, availability: str, capacity: int | None = None) -> AgentStatus:
    """Set an agent's availability (and capacity); coming online or gaining room routes at once."""
    if availability not in AgentStatus.Availability.values:
        raise ApplicationError(f"Unknown availability {availability!r}.")
    defaults: dict[str, object] = {"availability": availability}
    if capacity is not None:
        defaults["capacity"] = capacity
    status, _ = AgentStatus.objects.update_or_create(user=user, defaults=defaults)
    if availability == AgentStatus.Availability.ONLINE:
        inbox_ids = list(user.inboxes.filter(routing__isnull=False).exclude(
            routing__mode=InboxRouting.Mode.MANUAL).values_list("pk", flat=True))
        transaction.on_commit(lambda: [routing_assign_waiting(inbox_id=i) for i in inbox_ids])
    return status



def agent_status_get(*, user: AbstractBaseUser) -> AgentStatus:
    """The agent's availability and capacity; the defaults (offline) for one who never set them."""
    return AgentStatus.objects.filter(user=user).first() or AgentStatus(user=user)
