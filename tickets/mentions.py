"""@mentions in internal notes: who a note names, and who may be told about it.

Only agents who can see the conversation are ever offered or notified (members of its inbox
and managers), so a mention never leaks a conversation to someone outside its inbox.
"""
from __future__ import annotations

import re
from functools import reduce
from operator import or_

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.db.models import Exists, OuterRef, Q, QuerySet

from conversations.models import Inbox
from helpdesk.roles import MANAGERS_GROUP
from tickets.models import Ticket

# "@" then a username (Django's characters but "@"), not preceded by a word character or an
# address character: "ask @Bob." names bob, "mail a@b.c" names nobody.
MENTION = re.compile(r"(?<![\w@.+-])@([\w.+-]+)")
MAX_MENTIONS = 20  # per note: bounds the lookup


def mentioned_usernames(text: str) -> list[str]:
    """The usernames a text mentions, lower-cased, once each, in order of appearance."""
    names = (match.group(1).rstrip(".").lower() for match in MENTION.finditer(text or ""))
    return list(dict.fromkeys(name for name in names if name))[:MAX_MENTIONS]


def agents_for_ticket(*, ticket: Ticket) -> QuerySet:
    """Active users who can see the ticket: members of its inbox, managers, superusers."""
    member = Inbox.members.through.objects.filter(user_id=OuterRef("pk"), inbox_id=ticket.conversation.inbox_id)
    manager = Group.objects.filter(user=OuterRef("pk"), name=MANAGERS_GROUP)
    return get_user_model().objects.filter(is_active=True).filter(Q(is_superuser=True) | Exists(manager) | Exists(member))


def mentionable_agents(*, ticket: Ticket, prefix: str = "", limit: int = 10) -> list[AbstractBaseUser]:
    """The composer's @ picker: agents who can see the ticket whose username or name starts
    with `prefix`, by username. One query."""
    qs = agents_for_ticket(ticket=ticket)
    prefix = prefix.strip().lstrip("@")
    if prefix:
        qs = qs.filter(Q(username__istartswith=prefix) | Q(first_name__istartswith=prefix) | Q(last_name__istartswith=prefix))
    return list(qs.order_by("username", "pk")[:limit])


def mentioned_agents(*, ticket: Ticket, author: AbstractBaseUser, text: str) -> list[AbstractBaseUser]:
    """Who a note on this ticket should notify: the mentioned agents (case-insensitive) who
    can see it, never its author, each once. No query when the text mentions nobody."""
    names = mentioned_usernames(text)
    if not names:
        return []
    named = reduce(or_, (Q(username__iexact=name) for name in names))
    return list(agents_for_ticket(ticket=ticket).filter(named).exclude(pk=author.pk).order_by("pk"))
