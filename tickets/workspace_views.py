"""Dashboard endpoints of the agent workspace: snooze, team transfer, bulk actions, canned
responses, the @mention picker and the agent's own availability.

Thin like tickets/views.py, whose helpers they share: conversation actions answer the
conversation fragment (or redirect without JavaScript), the rest answer JSON for
static/desk/*.js. Permission is the selectors' (404 outside the agent's inboxes).
"""
from __future__ import annotations

import json

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from conversations.services import ApplicationError
from tickets.canned import canned_rows
from tickets.mentions import mentionable_agents
from tickets.models import AgentStatus, Team, Ticket
from tickets.routing import agent_availability_set, agent_status_get
from tickets.selectors import ticket_get_for_agent
from tickets.services import ticket_set_team, tickets_bulk_apply
from tickets.snooze import snooze_until_parse, ticket_snooze, ticket_unsnooze
from tickets.views import action_done, action_failed, dashboard_csp


@require_POST
@dashboard_csp
def conversation_snooze(request: HttpRequest, conversation_id: int) -> HttpResponse:
    """Snooze until `until` (a preset, "reply" or a date and time); 400 with the reason."""
    ticket = ticket_get_for_agent(user=request.user, ticket_id=conversation_id)
    # Without JavaScript the custom time comes as typed (no offset: read in the desk's zone).
    raw = request.POST.get("until") or request.POST.get("until_local", "")
    try:
        ticket_snooze(ticket=ticket, until=snooze_until_parse(raw), by=request.user)
    except ApplicationError as err:
        return action_failed(request, ticket.pk, str(err))
    return action_done(request, ticket.pk)


@require_POST
@dashboard_csp
def conversation_unsnooze(request: HttpRequest, conversation_id: int) -> HttpResponse:
    ticket = ticket_get_for_agent(user=request.user, ticket_id=conversation_id)
    ticket_unsnooze(ticket=ticket, by=request.user)
    return action_done(request, ticket.pk)


@require_POST
@dashboard_csp
def conversation_team(request: HttpRequest, conversation_id: int) -> HttpResponse:
    """Transfer to the team `team` (an id; empty: no team)."""
    ticket = ticket_get_for_agent(user=request.user, ticket_id=conversation_id)
    raw = request.POST.get("team", "").strip()
    team = None
    if raw:
        team = Team.objects.filter(pk=int(raw)).first() if raw.isdigit() else None
        if team is None:
            return action_failed(request, ticket.pk, "No such team.")
    ticket_set_team(ticket=ticket, team=team, by=request.user)
    return action_done(request, ticket.pk)


@require_POST
def bulk(request: HttpRequest) -> JsonResponse:
    """One action over a selection: form fields (ids repeated, action, value) or the same as
    a JSON object. {"updated": n, "skipped": [{"id", "reason"}]}; 400 {"error"} when the
    action or its value is wrong (then nothing changed)."""
    if request.content_type == "application/json":
        try:
            data = json.loads(request.body or b"{}")
        except ValueError:
            return JsonResponse({"error": "The body is not JSON."}, status=400)
        if not isinstance(data, dict):
            return JsonResponse({"error": "Send an object: ids, action, value."}, status=400)
        raw_ids, action, value = data.get("ids") or [], data.get("action", ""), data.get("value", "")
    else:
        raw_ids, action, value = request.POST.getlist("ids"), request.POST.get("action", ""), request.POST.get("value", "")
    ids = _ids(raw_ids)
    if ids is None:
        return JsonResponse({"error": "ids are conversation numbers."}, status=400)
    try:
        result = tickets_bulk_apply(user=request.user, ids=ids, action=str(action), value=str(value if value is not None else ""))
    except ApplicationError as err:
        return JsonResponse({"error": str(err)}, status=400)
    return JsonResponse({"updated": result.updated, "skipped": result.skipped})


def _ids(raw: object) -> list[int] | None:
    if not isinstance(raw, list):
        return None
    ids = []
    for item in raw:
        text = str(item).strip()
        if isinstance(item, bool) or not text.isdigit():
            return None
        ids.append(int(text))
    return ids


@require_GET
def canned_responses(request: HttpRequest) -> JsonResponse:
    """The picker's canned responses for a conversation, with its placeholders filled."""
    ticket = _ticket_param(request)
    if isinstance(ticket, JsonResponse):
        return ticket
    return JsonResponse({"results": canned_rows(ticket=ticket, agent=request.user, q=request.GET.get("q", ""))})


@require_GET
def mentionable(request: HttpRequest) -> JsonResponse:
    """The agents an @mention in this conversation's notes can reach, by prefix."""
    ticket = _ticket_param(request)
    if isinstance(ticket, JsonResponse):
        return ticket
    agents = mentionable_agents(ticket=ticket, prefix=request.GET.get("q", ""))
    return JsonResponse({"results": [{"id": a.pk, "username": a.get_username(), "name": a.get_full_name() or a.get_username()}
                                     for a in agents]})


def _ticket_param(request: HttpRequest) -> Ticket | JsonResponse:
    raw = request.GET.get("conversation", "")
    if not raw.isdigit():
        return JsonResponse({"error": "conversation: the conversation's number is required."}, status=400)
    return ticket_get_for_agent(user=request.user, ticket_id=int(raw))


@require_http_methods(["GET", "POST"])
def my_availability(request: HttpRequest) -> HttpResponse:
    """The agent's own availability: GET reads it, POST `availability` sets it (online routes
    waiting conversations to them at once). A plain form post goes back to the dashboard."""
    if request.method == "POST":
        try:
            status = agent_availability_set(user=request.user, availability=request.POST.get("availability", ""))
        except ApplicationError as err:
            return JsonResponse({"error": str(err)}, status=400)
        if "text/html" in request.headers.get("Accept", ""):
            return HttpResponseRedirect(reverse("dashboard"))
    else:
        status = agent_status_get(user=request.user)
    return JsonResponse(_availability(status))


def _availability(status: AgentStatus) -> dict[str, object]:
    return {"availability": status.availability, "capacity": status.capacity}
