"""Canned responses: the ones offered in a conversation, with their placeholders filled.

Placeholders are a fixed list of names replaced by plain text, never a template language: a
response body cannot reach any other attribute, run a tag or a filter, and an unknown or
misspelt placeholder stays visible as typed so the agent sees it before sending. The result
is plain text for the composer (which shows it as text, never as HTML).
"""
from __future__ import annotations

import re
from collections.abc import Callable

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q

from tickets.models import CannedResponse, Ticket

PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+(?:\.[a-z_]+)?)\s*\}\}")
MAX_RESULTS = 50


def _first(name: str) -> str:
    return name.split()[0] if name.strip() else ""


# Each placeholder and how to fill it from the ticket (with its conversation, contact and
# inbox loaded) and the agent writing.
FILLERS: dict[str, Callable[[Ticket, AbstractBaseUser], str]] = {
    "contact.name": lambda t, a: t.conversation.contact.name or t.conversation.contact.display_name,
    "contact.first_name": lambda t, a: _first(t.conversation.contact.name),
    "contact.email": lambda t, a: t.conversation.contact.email,
    "agent.name": lambda t, a: a.get_full_name() or a.get_username(),
    "agent.first_name": lambda t, a: a.first_name or a.get_username(),
    "conversation.id": lambda t, a: str(t.pk),
    "inbox.name": lambda t, a: t.conversation.inbox.name,
}


def canned_render(*, body: str, ticket: Ticket, agent: AbstractBaseUser) -> str:
    """The body with its known placeholders filled; unknown ones are left as they are."""
    def fill(match: re.Match) -> str:
        filler = FILLERS.get(match.group(1))
        return filler(ticket, agent) if filler else match.group(0)

    return PLACEHOLDER.sub(fill, body)


def canned_responses_for_ticket(*, ticket: Ticket, q: str = "", limit: int = MAX_RESULTS) -> list[CannedResponse]:
    """The responses offered in the ticket's inbox (those for every inbox and its own), by
    title; `q` matches the title or the start of the shortcut. One query."""
    qs = CannedResponse.objects.filter(Q(inbox__isnull=True) | Q(inbox_id=ticket.conversation.inbox_id))
    q = q.strip().lstrip("/")
    if q:
        qs = qs.filter(Q(title__icontains=q) | Q(shortcut__istartswith=q))
    return list(qs.order_by("title", "pk")[:limit])


def canned_rows(*, ticket: Ticket, agent: AbstractBaseUser, q: str = "") -> list[dict[str, object]]:
    """The picker's rows: each response with its text filled for this conversation."""
    return [{"id": r.pk, "title": r.title, "shortcut": r.shortcut, "body": r.body,
             "text": canned_render(body=r.body, ticket=ticket, agent=agent)}
            for r in canned_responses_for_ticket(ticket=ticket, q=q)]
