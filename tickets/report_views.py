"""The manager's reports page (/reports/) and its per-conversation CSV export.

Both read the same selectors (tickets.reports) with the same filter, parsed by the API's
ReportFilterSerializer, so the page, the CSV and the API agree to the unit. Managers only:
agents get 403. Same strict CSP as the dashboard: the charts are inline SVG with
presentation attributes, the script is our own file.
"""
from __future__ import annotations

import csv
from collections.abc import Callable
from datetime import datetime
from functools import wraps

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from conversations.models import Inbox
from helpdesk.roles import is_manager
from tickets import report_charts as charts
from tickets import reports
from tickets.models import Team, Ticket
from tickets.report_apis import REPORT_CHANNELS, ReportFilterSerializer
from tickets.reports import CSV_SLA_METRICS, ReportFilter

REPORTS_CSP = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)

CSV_COLUMNS = [
    "ticket_id", "created_at", "inbox", "channel", "team", "assignee", "priority", "status",
    "created", "solved", "reopened", "replies",
    "first_response_seconds", "first_response_business_seconds",
    "next_responses", "next_response_seconds", "next_response_business_seconds",
    "resolution_seconds", "resolution_business_seconds",
    *(f"sla_{m}_{outcome}" for m in CSV_SLA_METRICS for outcome in ("achieved", "breached")),
    "csat_rating",
]


FILTER_FIELDS = ("start", "end", "tz", "inbox", "channel", "team", "agent", "priority")


def manager_only(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @wraps(view)
    def wrapped(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        if not is_manager(request.user):
            raise PermissionDenied("Reports are for managers.")
        response = view(request, *args, **kwargs)
        response.setdefault("Content-Security-Policy", REPORTS_CSP)
        return response

    return wrapped


def _choices() -> dict[str, list[tuple[str, str]]]:
    users = get_user_model().objects.filter(is_active=True).order_by("first_name", "last_name", "username")
    return {
        "inboxes": [(str(pk), name) for pk, name in Inbox.objects.order_by("name").values_list("pk", "name")],
        "teams": [(str(pk), name) for pk, name in Team.objects.order_by("name").values_list("pk", "name")],
        "agents": [(str(u.pk), u.get_full_name() or u.get_username()) for u in users.only("pk", "first_name", "last_name", "username")],
        "channels": REPORT_CHANNELS,
        "priorities": list(Ticket.Priority.choices),
    }


@require_GET
@manager_only
def reports_page(request: HttpRequest) -> HttpResponse:
    serializer = ReportFilterSerializer(data=request.GET)
    context: dict[str, object] = {"choices": _choices(), "query": request.GET.urlencode(),
                                  "form": {name: request.GET.get(name, "") for name in FILTER_FIELDS}}
    if not serializer.is_valid():
        context["errors"] = {field: " ".join(str(e) for e in errs) for field, errs in serializer.errors.items()}
        return render(request, "reports/reports.html", context, status=400)
    f: ReportFilter = serializer.validated_data["filter"]
    context.update(_report_context(f))
    return render(request, "reports/reports.html", context)


def _report_context(f: ReportFilter) -> dict[str, object]:
    response = reports.response_times(f)
    sla = reports.sla_attainment(f)
    vol = reports.volume(f)
    heat = reports.heatmap(f)
    back = reports.backlog(f)
    agents = reports.agent_activity(f)
    satisfaction = reports.csat(f)
    top_agent = max([a.replies for a in agents] + [1])
    return {
        "filter": f,
        "form": {"start": f.start.isoformat(), "end": f.end.isoformat(), "tz": str(f.tz), "inbox": str(f.inbox_id or ""),
                 "channel": f.channel, "team": str(f.team_id or ""), "agent": str(f.agent_id or ""), "priority": f.priority},
        "response": [charts.response_chart(item) for item in response],
        "sla": [charts.sla_gauge(item) for item in sla],
        "volume": vol,
        "volume_charts": [
            ("channel", "By channel", charts.paired_bars(vol.by_channel)),
            ("inbox", "By inbox", charts.paired_bars(vol.by_inbox)),
            ("team", "By team", charts.paired_bars(vol.by_team)),
            ("agent", "By agent", charts.paired_bars(vol.by_agent)),
        ],
        "daily": charts.daily_bars(back.days),
        "heatmap": charts.heatmap_chart(heat),
        "backlog": charts.backlog_chart(back),
        "agents": [{"a": a, "bar": round(100 * a.replies / top_agent)} for a in agents],
        "csat": satisfaction,
        "csat_chart": charts.csat_chart(satisfaction),
    }


# --- CSV -----------------------------------------------------------------------------------


def _cell(value: object) -> object:
    return "" if value is None else value


def _csv_write(out: HttpResponse, f: ReportFilter) -> None:
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for row in reports.conversation_rows(f):
        created_at: datetime = row["created_at"]
        writer.writerow([
            row["ticket_id"], created_at.astimezone(f.tz).isoformat(),
            *(_cell(row[name]) for name in CSV_COLUMNS[2:]),
        ])


@require_GET
@manager_only
def reports_export_csv(request: HttpRequest) -> HttpResponse:
    serializer = ReportFilterSerializer(data=request.GET)
    if not serializer.is_valid():
        reasons = "; ".join(f"{field}: {' '.join(str(e) for e in errs)}" for field, errs in serializer.errors.items())
        return HttpResponse(f"Bad filter: {reasons}\n", status=400, content_type="text/plain; charset=utf-8")
    f: ReportFilter = serializer.validated_data["filter"]
    # Built whole, not streamed: under ASGI Django buffers a synchronous stream anyway, and
    # 100k conversations make ~15 MB.
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    _csv_write(response, f)
    response["Content-Disposition"] = f'attachment; filename="conversations-{f.start}-{f.end}.csv"'
    return response
