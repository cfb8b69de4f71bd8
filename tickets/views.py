"""The agent dashboard: server-rendered pages and HTML fragments over selectors and services.

The page works without JavaScript (links and POST forms that redirect back); static/desk/
desk.js swaps the same fragments in place and follows the realtime feed. Every dashboard
response carries a strict CSP: no inline script or style, so markup that slipped through
could not run anything.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import wraps

import nh3
from django import forms
from django.contrib import messages as flash
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.auth.views import redirect_to_login
from django.core import signing
from django.db import transaction
from django.db.models import Max
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_GET, require_POST

from conversations.html import html_with_cid_urls, sanitize_email_html
from conversations.models import Attachment, Channel, ContactIdentity, Event, Message
from conversations.realtime import seq_settled
from conversations.selectors import channel_config, contact_get_for_agent, contact_identities, conversation_visitors, reply_channels
from conversations.services import (
    ApplicationError,
    contact_merge,
    conversation_mark_seen_by_agent,
    reply_channel_choose,
    reply_retry,
)
from tickets.models import Ticket
from tickets.notifications import notifications_mark_read
from helpdesk.roles import is_manager
from tickets.search import MAX_QUERY_LENGTH, ticket_search
from tickets.selectors import (
    NONE,
    SORTS,
    VIEWS,
    ClockReading,
    agents_for_user,
    assignee_get_for_ticket,
    collision_report,
    inboxes_for_user,
    list_tabs,
    message_get_for_agent,
    messages_since_conflicting,
    notifications_for_user,
    notifications_unread_count,
    sla_clocks_for_ticket,
    teams_all,
    ticket_get_for_agent,
    ticket_list,
    timeline,
    view_counts,
    view_parse,
)
from tickets.services import (
    conversation_merge,
    ticket_assign,
    ticket_note_create,
    ticket_reply_create,
    ticket_set_priority,
    ticket_set_status,
    ticket_set_tags,
)
from tickets.unread import ticket_mark_read

PAGE_SIZE = 50

DASHBOARD_CSP = (
    "default-src 'self'; img-src 'self' data:; frame-src 'self'; connect-src 'self' ws: wss:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# The message viewer: no script at all (sandbox), no fetch but our own images unless asked.
HTML_VIEWER_CSP = "default-src 'none'; img-src 'self' data:{remote}; style-src 'unsafe-inline'; sandbox"

# cid: images inside the sandboxed viewer are fetched from an opaque origin, so the browser
# sends no session cookie: the viewer hands them short-lived signed URLs instead.
CID_TOKEN_SALT = "helpdesk.attachment.cid"
CID_TOKEN_MAX_AGE = 600
INLINE_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
# Types a browser would render as a document (script included) if it ever showed them.
ACTIVE_CONTENT_TYPES = frozenset({"text/html", "application/xhtml+xml", "image/svg+xml", "text/xml", "application/xml"})

FRAGMENT_HEADER = "X-Desk-Fragment"
# What conversations.html.sanitize_email_html lets through; a second pass must not narrow it.
SANITIZED_URL_SCHEMES = {"http", "https", "mailto", "tel", "cid"}


def dashboard_csp(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @wraps(view)
    def wrapped(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        response = view(request, *args, **kwargs)
        response.setdefault("Content-Security-Policy", DASHBOARD_CSP)
        return response

    return wrapped


# Pages and fragments ---------------------------------------------------------------------

@require_GET
@dashboard_csp
def dashboard(request: HttpRequest, conversation_id: int | None = None) -> HttpResponse:
    # Read the feed position before anything else: an event committed while the page renders
    # is then replayed by the first catch-up instead of being lost between the two reads.
    last_seq = _latest_seq()
    params = ListParamsForm(request.GET)
    if not params.is_valid():
        params = ListParamsForm({})  # an old bookmark with a view that no longer exists: the default list
        params.is_valid()
    ticket = None
    if conversation_id is not None:
        ticket = ticket_get_for_agent(user=request.user, ticket_id=conversation_id)
        if ticket.conversation.merged_into_id is not None:
            return _merged_redirect(request, ticket, "conversation")
    context: dict[str, object] = {
        "last_seq": last_seq, "sorts": SORT_LABELS,
        "unread_notifications": notifications_unread_count(user=request.user),
        "is_manager": is_manager(request.user),
        **_list_context(request, params.cleaned_data, conversation_id),
        **_list_pane_context(request),
    }
    context["views"], context["team_views"], context["inbox_views"] = _view_tabs(context)
    if ticket is not None:
        ticket_mark_read(user=request.user, ticket=ticket)  # opened on the page: read
        context |= _conversation_context(request, ticket.pk, ticket=ticket)
    return render(request, "tickets/dashboard.html", context)


def _merged_redirect(request: HttpRequest, ticket: Ticket, url_name: str) -> HttpResponse:
    """Old links to a merged conversation lead to the one that holds its messages now."""
    query = f"?{request.GET.urlencode()}" if request.GET else ""
    return HttpResponseRedirect(reverse(url_name, args=[ticket.conversation.merged_into_id]) + query)


@require_GET
@dashboard_csp
def conversation_list(request: HttpRequest) -> HttpResponse:
    """The left pane's list for one view, filtered, sorted or searched (ListParamsForm), as a
    fragment; 400 with the reason for a bad parameter."""
    params = ListParamsForm(request.GET)
    if not params.is_valid():
        return HttpResponse(_form_error(params), status=400, content_type="text/plain; charset=utf-8")
    selected = request.GET.get("selected", "")
    context = _list_context(request, params.cleaned_data, int(selected) if selected.isdigit() else None)
    return render(request, "tickets/_list.html", context)


@require_GET
@dashboard_csp
def conversation_timeline(request: HttpRequest, conversation_id: int) -> HttpResponse:
    """The right pane for one conversation (header, timeline, composer), as a fragment."""
    ticket = ticket_get_for_agent(user=request.user, ticket_id=conversation_id)
    if ticket.conversation.merged_into_id is not None:
        return _merged_redirect(request, ticket, "conversation-timeline")
    return render(request, "tickets/_conversation.html", _conversation_context(request, conversation_id, ticket=ticket))


@require_GET
@dashboard_csp
def conversation_sla(request: HttpRequest, conversation_id: int) -> HttpResponse:
    """The conversation's SLA panel alone: its clocks, each with its event log."""
    ticket = ticket_get_for_agent(user=request.user, ticket_id=conversation_id)
    now = timezone.now()
    _sla_badge(ticket, now)
    return render(request, "tickets/_sla_panel.html", _sla_context(ticket, now))


@require_POST
def conversation_seen(request: HttpRequest, conversation_id: int) -> HttpResponse:
    """The agent has the conversation's timeline on screen: a seen receipt for the customer,
    and the conversation is read for the agent (no unread mark in their list)."""
    ticket = ticket_get_for_agent(user=request.user, ticket_id=conversation_id)
    conversation_mark_seen_by_agent(conversation=ticket.conversation)
    ticket_mark_read(user=request.user, ticket=ticket)
    return HttpResponse(status=204)


class IdOrNoneField(forms.CharField):
    """A user or team id, or "none" (nobody)."""

    def to_python(self, value: object) -> int | str | None:
        value = super().to_python(value).strip().lower()
        if not value:
            return None
        if value == NONE:
            return NONE
        if not value.isdigit() or len(value) > 18:
            raise forms.ValidationError('An id or "none".')
        return int(value)


class TagListField(forms.Field):
    """Repeated ?tag=…&tag=…, each also split at commas and spaces."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value: object) -> list[str]:
        values = value if isinstance(value, (list, tuple)) else [value] if value else []
        names = [name.lower() for raw in values for name in re.split(r"[,\s]+", str(raw)) if name]
        bad = [name for name in names if not TAG_NAME.match(name)]
        if bad:
            raise forms.ValidationError(f"Tags are made of letters, digits, - and _ (up to 60): {', '.join(bad)}.")
        return list(dict.fromkeys(names))


REPLY_CHANNEL_CHOICES = [(c.value, c.label) for c in (Channel.EMAIL, Channel.SMS, Channel.WEBCHAT)]


class ListParamsForm(forms.Form):
    """The list's query parameters (GET /list, and the dashboard page's)."""

    view = forms.CharField(required=False, max_length=40)
    sort = forms.ChoiceField(choices=[("", "")] + [(key, key) for key in SORTS], required=False)
    q = forms.CharField(required=False, max_length=MAX_QUERY_LENGTH)
    status = forms.ChoiceField(choices=[("", "")] + Ticket.Status.choices, required=False)
    channel = forms.ChoiceField(choices=[("", "")] + REPLY_CHANNEL_CHOICES, required=False)
    priority = forms.ChoiceField(choices=[("", "")] + Ticket.Priority.choices, required=False)
    tag = TagListField(required=False)
    assignee = IdOrNoneField(required=False)
    team = IdOrNoneField(required=False)
    inbox = forms.IntegerField(required=False, min_value=1, max_value=2**62)
    created_after = forms.DateField(required=False, input_formats=["%Y-%m-%d"])
    created_before = forms.DateField(required=False, input_formats=["%Y-%m-%d"])

    def clean_view(self) -> str:
        view = self.cleaned_data["view"] or "open"
        if view_parse(view) is None:
            raise forms.ValidationError(f"Unknown view {view!r}: one of {', '.join(VIEWS)}, team:<id> or inbox:<id>.")
        return view

    def clean_sort(self) -> str:
        return self.cleaned_data["sort"] or "activity"


VIEW_LABELS = {"open": "Open", "mine": "Mine", "unassigned": "Unassigned", "pending": "Pending", "snoozed": "Snoozed",
               "at_risk": "SLA at risk", "solved": "Solved", "all": "All"}


def _view_tabs(context: dict) -> tuple[list[dict], list[dict], list[dict]]:
    """The tabs with their counts: the fixed views, the agent's teams, their inboxes."""
    counts = context["counts"]

    def tab(key: str, label: str) -> dict:
        return {"key": key, "label": label, "count": counts.get(key)}

    return ([tab(view, VIEW_LABELS[view]) for view in VIEWS], [tab(t.view, t.label) for t in context["team_tabs"]],
            [tab(t.view, t.label) for t in context["inbox_tabs"]])


SORT_LABELS = [("activity", "Latest activity"), ("waiting", "Longest waiting"), ("sla_due", "SLA due"), ("created", "Newest")]
SNOOZE_PRESETS = [("1h", "1 hour"), ("4h", "4 hours"), ("tomorrow", "Tomorrow 9:00"), ("next_week", "Next week"),
                  ("reply", "Until the customer replies")]


def _latest_seq() -> int:
    # The global maximum is enough: catch-up returns only what this agent may see after it.
    # But not past an event still being committed: the page's first catch-up fetches it.
    latest = Event.objects.aggregate(seq=Max("id"))["seq"] or 0
    return seq_settled(after=0, upto=latest)


def _list_context(request: HttpRequest, params: dict, selected_id: int | None) -> dict[str, object]:
    """The list (#conv-list) for cleaned ListParamsForm data: the page of rows with their
    unread marks and search snippets, and every tab's count."""
    now = timezone.now()
    user = request.user
    team_tabs, inbox_tabs = list_tabs(user=user)  # first: it also tells which inboxes the agent sees
    counts = view_counts(user=user, team_ids=[t.ref for t in team_tabs], inbox_ids=[t.ref for t in inbox_tabs], now=now)
    q = params["q"].strip()
    hits = ticket_search(user=user, q=q) if q else None
    rows = list(ticket_list(
        user=user, view=params["view"], sort=params["sort"], now=now, status=params["status"], channel=params["channel"],
        priority=params["priority"], tags=params["tag"], assignee_id=params["assignee"], team_id=params["team"],
        inbox_id=params["inbox"], created_after=params["created_after"], created_before=params["created_before"],
        ticket_ids=None if hits is None else list(hits), with_unread=True,
    )[: PAGE_SIZE + 1])
    for ticket in rows[:PAGE_SIZE]:
        since = ticket.conversation.waiting_since
        ticket.waiting_label = _short_age(now - since) if since and ticket.is_open else ""
        # The conversation on screen is being read: no marker while the agent looks at it.
        ticket.unread = ticket.unread and ticket.pk != selected_id
        ticket.search_hit = hits.get(ticket.pk) if hits else None
        _sla_badge(ticket, now)
    return {"tickets": rows[:PAGE_SIZE], "has_more": len(rows) > PAGE_SIZE, "view": params["view"], "sort": params["sort"],
            "selected_id": selected_id, "now": now, "q": q, "filters": params, "team_tabs": team_tabs,
            "inbox_tabs": inbox_tabs, "counts": counts,
            # Known keys and integers only: safe inside the single-quoted attribute as it is.
            "counts_json": json.dumps(counts)}


def _list_pane_context(request: HttpRequest) -> dict[str, object]:
    """What the pane around the list offers: the filter choices and the bulk toolbar's."""
    return {"agents": agents_for_user(user=request.user), "teams": teams_all(), "inboxes": inboxes_for_user(user=request.user),
            "statuses": Ticket.Status.choices, "priorities": Ticket.Priority.choices, "channels": REPLY_CHANNEL_CHOICES,
            "snooze_presets": SNOOZE_PRESETS}


SLA_BADGE_LABELS = {"ok": "", "warning": "At risk", "breached": "Breached", "paused": "Paused"}


def _sla_badge(ticket: Ticket, now: datetime) -> None:
    """The list's and header's SLA badge: the state, and the calendar time to the nearest
    deadline (negative once it passed), which desk.js keeps ticking."""
    ticket.sla_label = SLA_BADGE_LABELS.get(ticket.sla_state, "")
    left = ticket.sla_due_at - now if ticket.sla_due_at else None
    ticket.sla_left = _countdown(left) if left is not None else ""
    ticket.sla_overdue = left is not None and left.total_seconds() < 0


def _countdown(delta: timedelta) -> str:
    """Time left as an agent scans it: 2d 4h, 1h 05m, 4m 09s; a minus sign once overdue.
    desk.js formats the ticking value the same way (countdown())."""
    seconds = int(delta.total_seconds())
    sign, seconds = ("-", -seconds) if seconds < 0 else ("", seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{sign}{days}d {hours}h"
    if hours:
        return f"{sign}{hours}h {minutes:02d}m"
    return f"{sign}{minutes}m {secs:02d}s"


def _short_age(age: timedelta) -> str:
    """A compact age for a list row: 45s, 12m, 3h, 2d."""
    seconds = max(int(age.total_seconds()), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _conversation_context(request: HttpRequest, conversation_id: int, *, ticket: Ticket | None = None) -> dict[str, object]:
    if ticket is None:
        ticket = ticket_get_for_agent(user=request.user, ticket_id=conversation_id)
    conversation = ticket.conversation
    agents = list(conversation.inbox.members.order_by("first_name", "username"))
    identities = contact_identities(conversation.contact)
    # Only web chat inboxes have visitors: other inboxes skip the query.
    visitors = conversation_visitors(conversation) if channel_config(conversation.inbox, "webchat_channel") else []
    channels = reply_channels(conversation, identities=identities, visitors=visitors)
    now = timezone.now()
    _sla_badge(ticket, now)
    return {
        **_sla_context(ticket, now),
        "priorities": Ticket.Priority.choices,
        "tags_value": ", ".join(tag.name for tag in ticket.tags.order_by("name")),
        "ticket": ticket,
        "conversation": conversation,
        "entries": list(timeline(conversation_id=ticket.pk)),
        "agents": agents,
        "me_is_agent": any(agent.pk == request.user.pk for agent in agents),
        "statuses": Ticket.Status.choices,
        "identities": [_identity_row(identity) for identity in identities],
        "visitors": visitors,
        "reply_channels": channels,
        "reply_blocked": _reply_blocked_reason(channels),
    }


def _sla_context(ticket: Ticket, now: datetime) -> dict[str, object]:
    return {"ticket": ticket, "sla_clocks": [_clock_row(reading) for reading in sla_clocks_for_ticket(ticket=ticket, now=now)],
            "now": now}


def _clock_row(reading: ClockReading) -> dict[str, object]:
    """What the SLA panel shows of one clock; the figures are the engine's (selectors)."""
    clock = reading.clock
    return {
        "id": clock.pk,
        "metric": clock.metric,
        "metric_label": clock.get_metric_display(),
        "policy": clock.policy_name,
        "target": _span(timedelta(seconds=clock.target_seconds)),
        "kind": "business" if clock.business_hours else "calendar",
        "calendar": clock.calendar.name if clock.business_hours and clock.calendar else "",
        "state": clock.state,
        "state_label": clock.get_state_display(),
        "running": clock.is_running,
        "used": _span(reading.used),
        "left": _span(reading.left),
        "overdue": reading.left.total_seconds() < 0,
        "deadline": clock.deadline if clock.state == clock.State.ACTIVE else None,
        "warned_at": clock.warned_at,
        "breached_at": clock.breached_at,
        "breached": reading.breached,
        "started_at": clock.started_at,
        "ended_at": clock.ended_at,
        "events": [{"at": e.at, "kind": e.kind, "kind_label": e.get_kind_display(), "reason": e.reason,
                    "elapsed": _span(e.elapsed)} for e in reading.events],
    }


def _span(delta: timedelta) -> str:
    """A duration in the panel: 1h 05m 00s, 12m 30s, 2d 3h 10m; negative with a minus sign."""
    seconds = int(delta.total_seconds())
    sign, seconds = ("-", -seconds) if seconds < 0 else ("", seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{sign}{days}d {hours}h {minutes:02d}m"
    if hours:
        return f"{sign}{hours}h {minutes:02d}m {secs:02d}s"
    return f"{sign}{minutes}m {secs:02d}s"


def _identity_row(identity: ContactIdentity) -> dict[str, object]:
    """What the header shows of one identity; an opted-out number gets its consent state."""
    row: dict[str, object] = {"kind": identity.kind, "label": identity.get_kind_display(), "address": identity.address,
                              "warning": ""}
    if identity.kind == ContactIdentity.Kind.PHONE and identity.sms_opted_out_at:
        when = timezone.localtime(identity.sms_opted_out_at).strftime("%Y-%m-%d")
        row["warning"] = f"SMS opted out ({identity.sms_consent_keyword or 'STOP'}, {when})"
    return row


def _reply_blocked_reason(channels: list) -> str:
    # The unavailable channels show their own reasons beside the selector.
    if any(channel.available for channel in channels):
        return ""
    if channels:
        return "No channel to reply on."
    return "No channel to reply on: this inbox has no channel that reaches this customer."


# Actions -------------------------------------------------------------------------------

class ComposeForm(forms.Form):
    text = forms.CharField(max_length=100_000, strip=False)
    # "via": the reply's channel; empty takes the default (checked by reply_channel_choose).
    channel = forms.ChoiceField(choices=[("", "")] + [(c.value, c.label) for c in (Channel.EMAIL, Channel.SMS, Channel.WEBCHAT)],
                                required=False)
    # "Submit as …": the status to leave the ticket in; empty keeps it.
    status = forms.ChoiceField(choices=[("", "")] + Ticket.Status.choices, required=False)
    # The collision check: the newest message the agent had seen when they started writing,
    # and confirm=1 once they chose to send anyway. Without seen_message_id there is no check.
    seen_message_id = forms.IntegerField(required=False, min_value=0, max_value=2**62)
    confirm = forms.BooleanField(required=False)


class StatusForm(forms.Form):
    status = forms.ChoiceField(choices=Ticket.Status.choices)


class PriorityForm(forms.Form):
    priority = forms.ChoiceField(choices=Ticket.Priority.choices)


TAG_NAME = re.compile(r"^[-a-z0-9_]{1,60}$")


class TagsForm(forms.Form):
    """Tags as typed: separated by commas or spaces; empty removes them all."""

    tags = forms.CharField(max_length=2000, required=False)

    def clean_tags(self) -> list[str]:
        names = [name.strip().lower() for name in re.split(r"[,\s]+", self.cleaned_data["tags"]) if name.strip()]
        bad = [name for name in names if not TAG_NAME.match(name)]
        if bad:
            raise forms.ValidationError(f"Tags are made of letters, digits, - and _ (up to 60): {', '.join(bad)}.")
        return names


@require_POST
@dashboard_csp
def conversation_reply(request: HttpRequest, conversation_id: int) -> HttpResponse:
    return _compose(request, conversation_id, write=_reply_via)


def _reply_via(*, ticket: Ticket, author: AbstractBaseUser, text: str, channel: str = "") -> Message:
    chosen = reply_channel_choose(conversation=ticket.conversation, channel=channel or None)
    return ticket_reply_create(ticket=ticket, author=author, text=text, channel=chosen)


def _note(*, ticket: Ticket, author: AbstractBaseUser, text: str, channel: str = "") -> Message:
    return ticket_note_create(ticket=ticket, author=author, text=text)


@require_POST
@dashboard_csp
def conversation_note(request: HttpRequest, conversation_id: int) -> HttpResponse:
    return _compose(request, conversation_id, write=_note)


def _compose(request: HttpRequest, conversation_id: int, *, write: Callable[..., Message]) -> HttpResponse:
    ticket = ticket_get_for_agent(user=request.user, ticket_id=conversation_id)
    form = ComposeForm(request.POST)
    if not form.is_valid():
        return action_failed(request, ticket.pk, _form_error(form))
    seen = form.cleaned_data["seen_message_id"]
    if seen is not None and not form.cleaned_data["confirm"]:
        conflicts = messages_since_conflicting(conversation_id=ticket.pk, after_id=seen, user=request.user)
        if conflicts:
            return JsonResponse(collision_report(messages=conflicts), status=409)
    try:
        # One use case: "Submit as Solved" writes the reply and the status, or neither.
        with transaction.atomic():
            write(ticket=ticket, author=request.user, text=form.cleaned_data["text"],
                  channel=form.cleaned_data["channel"])
            if form.cleaned_data["status"]:
                ticket_set_status(ticket=ticket, status=form.cleaned_data["status"], by=request.user)
    except ApplicationError as err:
        return action_failed(request, ticket.pk, str(err))
    return action_done(request, ticket.pk)


def _form_action(request: HttpRequest, conversation_id: int, form_class: type[forms.Form],
                 act: Callable[[Ticket, dict], object]) -> HttpResponse:
    """One ticket field set from a posted form: 404 outside the agent's inboxes, the form's
    reason on bad input, else the service's change."""
    ticket = ticket_get_for_agent(user=request.user, ticket_id=conversation_id)
    form = form_class(request.POST)
    if not form.is_valid():
        return action_failed(request, ticket.pk, _form_error(form))
    act(ticket, form.cleaned_data)
    return action_done(request, ticket.pk)


@require_POST
@dashboard_csp
def conversation_status(request: HttpRequest, conversation_id: int) -> HttpResponse:
    return _form_action(request, conversation_id, StatusForm,
                        lambda ticket, data: ticket_set_status(ticket=ticket, status=data["status"], by=request.user))


@require_POST
@dashboard_csp
def conversation_priority(request: HttpRequest, conversation_id: int) -> HttpResponse:
    """Set the priority; the SLA policy is matched again (new targets from now on)."""
    return _form_action(request, conversation_id, PriorityForm,
                        lambda ticket, data: ticket_set_priority(ticket=ticket, priority=data["priority"], by=request.user))


@require_POST
@dashboard_csp
def conversation_tags(request: HttpRequest, conversation_id: int) -> HttpResponse:
    """Replace the tags; the SLA policy is matched again."""
    return _form_action(request, conversation_id, TagsForm,
                        lambda ticket, data: ticket_set_tags(ticket=ticket, names=data["tags"], by=request.user))


@require_POST
@dashboard_csp
def conversation_assign(request: HttpRequest, conversation_id: int) -> HttpResponse:
    ticket = ticket_get_for_agent(user=request.user, ticket_id=conversation_id)
    raw = request.POST.get("assignee", "")
    assignee = None
    if raw:
        # Never someone who could not see the conversation.
        assignee = assignee_get_for_ticket(ticket=ticket, user_id=int(raw)) if raw.isdigit() else None
        if assignee is None:
            return action_failed(request, ticket.pk, "That agent does not work this inbox.")
    ticket_assign(ticket=ticket, assignee=assignee, by=request.user)
    return action_done(request, ticket.pk)


@require_POST
@dashboard_csp
def conversation_merge_into(request: HttpRequest, conversation_id: int) -> HttpResponse:
    """Merge this conversation into another one (by its number); the page then shows the target."""
    source = ticket_get_for_agent(user=request.user, ticket_id=conversation_id)
    raw = request.POST.get("into", "").strip().lstrip("#")
    if not raw.isdigit():
        return action_failed(request, source.pk, "Give the number of the conversation to merge into.")
    target = ticket_get_for_agent(user=request.user, ticket_id=int(raw))  # 404 outside the agent's inboxes
    try:
        conversation_merge(source=source, target=target, by=request.user)
    except ApplicationError as err:
        return action_failed(request, source.pk, str(err))
    return action_done(request, target.pk)


@require_POST
@dashboard_csp
def contact_merge_into(request: HttpRequest, conversation_id: int) -> HttpResponse:
    """Merge the conversation's contact into another contact (by its id)."""
    ticket = ticket_get_for_agent(user=request.user, ticket_id=conversation_id)
    raw = request.POST.get("into", "").strip().lstrip("#")
    if not raw.isdigit():
        return action_failed(request, ticket.pk, "Give the id of the contact to merge into.")
    source = contact_get_for_agent(user=request.user, contact_id=ticket.conversation.contact_id)
    target = contact_get_for_agent(user=request.user, contact_id=int(raw))  # 404 unless the agent sees it
    try:
        contact_merge(source=source, target=target, by=request.user)
    except ApplicationError as err:
        return action_failed(request, ticket.pk, str(err))
    return action_done(request, ticket.pk)


@require_POST
@dashboard_csp
def message_retry(request: HttpRequest, message_id: int) -> HttpResponse:
    message = message_get_for_agent(user=request.user, message_id=message_id)
    try:
        reply_retry(message=message)
    except ApplicationError as err:
        return action_failed(request, message.conversation_id, str(err))
    return action_done(request, message.conversation_id)


# Notifications --------------------------------------------------------------------------

@require_GET
@dashboard_csp
def notification_list(request: HttpRequest) -> HttpResponse:
    """The bell's list: the agent's latest notifications and the unread count, as a fragment."""
    return _notification_fragment(request)


@require_POST
@dashboard_csp
def notifications_read(request: HttpRequest) -> HttpResponse:
    """Mark one notification (`id`) or all of them read; answers the refreshed list."""
    raw = request.POST.get("id", "")
    if raw and not raw.isdigit():
        return HttpResponse("id must be a number.", status=400, content_type="text/plain; charset=utf-8")
    notifications_mark_read(user=request.user, notification_id=int(raw) if raw else None)
    if _wants_fragment(request):
        return _notification_fragment(request)
    return HttpResponseRedirect(reverse("dashboard"))


def _notification_fragment(request: HttpRequest) -> HttpResponse:
    context = {"notifications": notifications_for_user(user=request.user),
               "unread": notifications_unread_count(user=request.user)}
    return render(request, "tickets/_notifications.html", context)


def _wants_fragment(request: HttpRequest) -> bool:
    return request.headers.get(FRAGMENT_HEADER) == "1"


def action_done(request: HttpRequest, conversation_id: int) -> HttpResponse:
    # The agent just acted on it (their own reply moves its activity): read up to now. A
    # fragment fetched to refresh a pane is not "read": desk.js posts /seen when one is shown.
    ticket_mark_read(user=request.user, ticket=Ticket(pk=conversation_id))
    if _wants_fragment(request):
        return render(request, "tickets/_conversation.html", _conversation_context(request, conversation_id))
    return HttpResponseRedirect(reverse("conversation", args=[conversation_id]))


def action_failed(request: HttpRequest, conversation_id: int, reason: str) -> HttpResponse:
    if _wants_fragment(request):
        return HttpResponse(reason, status=400, content_type="text/plain; charset=utf-8")
    flash.error(request, reason)
    return HttpResponseRedirect(reverse("conversation", args=[conversation_id]))


def _form_error(form: forms.Form) -> str:
    return " ".join(f"{field}: {' '.join(errors)}" if field != "__all__" else " ".join(errors) for field, errors in form.errors.items())


# The message HTML viewer and attachments ---------------------------------------------------

@require_GET
@xframe_options_sameorigin
def message_html(request: HttpRequest, message_id: int) -> HttpResponse:
    """The message's sanitised HTML as a document for a sandboxed iframe.

    Sanitised again here, so HTML that reached the row by another path is no worse off; the
    CSP is what keeps remote images (tracking pixels) unloaded until the agent asks.
    """
    message = message_get_for_agent(user=request.user, message_id=message_id)
    if not message.html:
        raise Http404("This message has no HTML part.")
    by_cid = {a.content_id: a for a in message.attachments.all() if a.content_id}

    def cid_url(cid: str) -> str | None:
        attachment = by_cid.get(cid)
        return cid_attachment_url(attachment) if attachment else None

    remote = request.GET.get("remote") == "1"
    body = html_with_cid_urls(_image_sources_filtered(sanitize_email_html(message.html), remote=remote), cid_url=cid_url)
    response = render(request, "tickets/message_html.html", {"body": body, "message": message})
    response["Content-Security-Policy"] = HTML_VIEWER_CSP.format(remote=" https: http:" if remote else "")
    response["X-Content-Type-Options"] = "nosniff"
    response["Referrer-Policy"] = "no-referrer"
    response["Cache-Control"] = "private, no-store"  # holds signed URLs that expire
    return response


def _image_sources_filtered(html: str, *, remote: bool) -> str:
    """Only cid: sources (and http(s) once the agent asks) reach the browser.

    The CSP would block a tracking pixel anyway, but the browser still starts the request
    before refusing it; without the URL in the markup there is nothing to start. Relative
    sources go too: an email has no business pointing at URLs of the desk itself.
    """
    allowed = ("cid:", "https://", "http://") if remote else ("cid:",)

    def keep(element: str, attribute: str, value: str) -> str | None:
        if attribute == "src" and not value.strip().lower().startswith(allowed):
            return None
        return value

    return nh3.clean(html, url_schemes=SANITIZED_URL_SCHEMES, attribute_filter=keep)


def cid_attachment_url(attachment: Attachment) -> str:
    token = signing.TimestampSigner(salt=CID_TOKEN_SALT).sign(attachment.uuid.hex)
    return f"{reverse('attachment-download', args=[attachment.uuid])}?t={token}"


def _cid_token_valid(token: str, attachment: Attachment) -> bool:
    try:
        value = signing.TimestampSigner(salt=CID_TOKEN_SALT).unsign(token, max_age=CID_TOKEN_MAX_AGE)
    except signing.BadSignature:  # includes SignatureExpired
        return False
    return value == attachment.uuid.hex


@login_not_required  # a signed cid URL stands in for the session (see CID_TOKEN_SALT)
@require_GET
def attachment_download(request: HttpRequest, attachment_uuid: object) -> HttpResponse:
    attachment = Attachment.objects.select_related("message").filter(uuid=attachment_uuid).first()
    token = request.GET.get("t", "")
    by_token = bool(token) and attachment is not None and _cid_token_valid(token, attachment)
    if not by_token:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if attachment is None:
            raise Http404("No such attachment.")
        ticket_get_for_agent(user=request.user, ticket_id=attachment.message.conversation_id)
    content_type = attachment.content_type.split(";")[0].strip().lower() or "application/octet-stream"
    if content_type in ACTIVE_CONTENT_TYPES or "html" in content_type or "xml" in content_type:
        content_type = "application/octet-stream"
    inline = by_token and content_type in INLINE_IMAGE_TYPES
    response = FileResponse(attachment.file.open("rb"), content_type=content_type, as_attachment=not inline, filename=attachment.filename)
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "sandbox"
    response["Cache-Control"] = "private, no-store"
    return response

