"""REST API of the manager's reports: one APIView per report, GET with the filter in the query string.

Managers only (403 for agents). A bad filter answers 400 with the reason per field. The
numbers are those of the /reports/ page and its CSV export: the same selectors.
"""
from __future__ import annotations

from dataclasses import asdict
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from conversations.models import Channel
from helpdesk.roles import is_manager
from tickets import reports
from tickets.models import Ticket
from tickets.reports import ReportFilter

REPORT_CHANNELS = [(c.value, c.label) for c in (Channel.EMAIL, Channel.SMS, Channel.WEBCHAT)]


@lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones())  # reads the tz database from disk: once


class IsManager(BasePermission):
    message = "Reports are for managers."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return is_manager(request.user)


class ReportFilterSerializer(serializers.Serializer):
    """The query string of every report (and of the page and the CSV export)."""

    start = serializers.DateField(required=False, help_text="First day (YYYY-MM-DD) in the report's time zone; "
                                                            "default: 29 days before `end`.")
    end = serializers.DateField(required=False, help_text="Last day, inclusive; default: today.")
    tz = serializers.CharField(required=False, max_length=64,
                               help_text="IANA time zone the days and hours are counted in; default: the desk's TIME_ZONE.")
    inbox = serializers.IntegerField(required=False, min_value=1)
    channel = serializers.ChoiceField(choices=REPORT_CHANNELS, required=False)
    team = serializers.IntegerField(required=False, min_value=1)
    agent = serializers.IntegerField(required=False, min_value=1)
    priority = serializers.ChoiceField(choices=Ticket.Priority.choices, required=False)

    def validate_tz(self, value: str) -> ZoneInfo:
        # ZoneInfo alone would also accept file paths under the tz database; names only.
        if value not in _zone_names():
            raise serializers.ValidationError(f"Unknown time zone {value!r}: use an IANA name such as Europe/Berlin.")
        try:
            return ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as err:
            raise serializers.ValidationError(str(err)) from None

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        tz = data.get("tz") or reports.report_time_zone()
        default = ReportFilter.last_days(30, tz=tz, today=data.get("end"))
        try:
            data["filter"] = ReportFilter(
                start=data.get("start") or default.start, end=data.get("end") or default.end, tz=tz,
                inbox_id=data.get("inbox"), channel=data.get("channel", ""), team_id=data.get("team"),
                agent_id=data.get("agent"), priority=data.get("priority", ""),
            )
        except ValueError as err:
            raise serializers.ValidationError({"end": [str(err)]}) from None
        return data


def report_filter(query: Any) -> ReportFilter:
    """Parse a query string into a ReportFilter; raises DRF's ValidationError (400) when bad."""
    serializer = ReportFilterSerializer(data=query)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data["filter"]


class ReportApi(APIView):
    permission_classes = (IsManager,)

    def get(self, request: Request) -> Response:
        f = report_filter(request.query_params)
        data = self.compute(f)
        return Response(self.OutputSerializer(data).data)

    def compute(self, f: ReportFilter) -> Any:  # pragma: no cover - every subclass defines it
        raise NotImplementedError


def _range(f: ReportFilter) -> dict[str, Any]:
    return {"start": f.start, "end": f.end, "tz": str(f.tz)}


class RangeSerializer(serializers.Serializer):
    start = serializers.DateField()
    end = serializers.DateField()
    tz = serializers.CharField()


class DistributionSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    median = serializers.IntegerField(allow_null=True, help_text="Seconds; nearest-rank 50th percentile.")
    p90 = serializers.IntegerField(allow_null=True, help_text="Seconds; nearest-rank 90th percentile.")
    mean = serializers.FloatField(allow_null=True, help_text="Seconds, rounded to 0.1.")


class ResponseTimesApi(ReportApi):
    """First response, next response and resolution times (calendar and business seconds)."""

    @extend_schema_serializer(component_name="ResponseTimesReport")
    class OutputSerializer(serializers.Serializer):
        class ResponseMetricSerializer(serializers.Serializer):
            metric = serializers.CharField()
            label = serializers.CharField()
            calendar = DistributionSerializer()
            business = DistributionSerializer()

        range = RangeSerializer()
        metrics = ResponseMetricSerializer(many=True)

    def compute(self, f: ReportFilter) -> dict:
        return {"range": _range(f), "metrics": [asdict(m) for m in reports.response_times(f)]}

    @extend_schema(operation_id="reports_response_times", parameters=[ReportFilterSerializer], responses=OutputSerializer)
    def get(self, request: Request) -> Response:
        return super().get(request)


class SlaAttainmentApi(ReportApi):
    """Per SLA metric: clocks achieved and breached whose outcome fell in the range."""

    @extend_schema_serializer(component_name="SlaAttainmentReport")
    class OutputSerializer(serializers.Serializer):
        class SlaMetricSerializer(serializers.Serializer):
            metric = serializers.CharField()
            label = serializers.CharField()
            achieved = serializers.IntegerField()
            breached = serializers.IntegerField()
            percent = serializers.FloatField(allow_null=True, help_text="achieved / (achieved + breached), rounded to 0.1.")

        range = RangeSerializer()
        metrics = SlaMetricSerializer(many=True)

    def compute(self, f: ReportFilter) -> dict:
        return {"range": _range(f), "metrics": reports.sla_attainment(f)}

    @extend_schema(operation_id="reports_sla", parameters=[ReportFilterSerializer], responses=OutputSerializer)
    def get(self, request: Request) -> Response:
        return super().get(request)


class VolumeRowSerializer(serializers.Serializer):
    key = serializers.CharField(help_text="The id (the channel's name for channels); empty for none.")
    label = serializers.CharField()
    created = serializers.IntegerField()
    solved = serializers.IntegerField()


class VolumeApi(ReportApi):
    """Conversations created and solved, per channel, inbox, team and agent."""

    @extend_schema_serializer(component_name="VolumeReport")
    class OutputSerializer(serializers.Serializer):
        range = RangeSerializer()
        created = serializers.IntegerField()
        solved = serializers.IntegerField()
        by_channel = VolumeRowSerializer(many=True)
        by_inbox = VolumeRowSerializer(many=True)
        by_team = VolumeRowSerializer(many=True)
        by_agent = VolumeRowSerializer(many=True)

    def compute(self, f: ReportFilter) -> dict:
        return {"range": _range(f), **asdict(reports.volume(f))}

    @extend_schema(operation_id="reports_volume", parameters=[ReportFilterSerializer], responses=OutputSerializer)
    def get(self, request: Request) -> Response:
        return super().get(request)


class HeatmapApi(ReportApi):
    """Conversations created per hour of the week, in the report's time zone."""

    @extend_schema_serializer(component_name="HeatmapReport")
    class OutputSerializer(serializers.Serializer):
        range = RangeSerializer()
        cells = serializers.ListField(child=serializers.ListField(child=serializers.IntegerField()),
                                      help_text="7 rows (Monday first) of 24 hourly counts.")
        max = serializers.IntegerField()
        total = serializers.IntegerField()

    def compute(self, f: ReportFilter) -> dict:
        return {"range": _range(f), **asdict(reports.heatmap(f))}

    @extend_schema(operation_id="reports_heatmap", parameters=[ReportFilterSerializer], responses=OutputSerializer)
    def get(self, request: Request) -> Response:
        return super().get(request)


class BacklogApi(ReportApi):
    """Open conversations at the end of each day, with the day's changes."""

    @extend_schema_serializer(component_name="BacklogReport")
    class OutputSerializer(serializers.Serializer):
        class BacklogDaySerializer(serializers.Serializer):
            day = serializers.DateField()
            created = serializers.IntegerField()
            solved = serializers.IntegerField()
            reopened = serializers.IntegerField()
            merged = serializers.IntegerField()
            backlog = serializers.IntegerField()

        range = RangeSerializer()
        opening = serializers.IntegerField(help_text="Open at the start of the first day.")
        days = BacklogDaySerializer(many=True)

    def compute(self, f: ReportFilter) -> dict:
        return {"range": _range(f), **asdict(reports.backlog(f))}

    @extend_schema(operation_id="reports_backlog", parameters=[ReportFilterSerializer], responses=OutputSerializer)
    def get(self, request: Request) -> Response:
        return super().get(request)


class AgentActivityApi(ReportApi):
    """Per agent: public replies, solves, first responses, CSAT answers and their average."""

    @extend_schema_serializer(component_name="AgentActivityReport")
    class OutputSerializer(serializers.Serializer):
        class AgentActivitySerializer(serializers.Serializer):
            agent_id = serializers.IntegerField()
            name = serializers.CharField()
            replies = serializers.IntegerField()
            solved = serializers.IntegerField()
            first_responses = serializers.IntegerField()
            csat_count = serializers.IntegerField()
            csat_average = serializers.FloatField(allow_null=True)

        range = RangeSerializer()
        agents = AgentActivitySerializer(many=True)

    def compute(self, f: ReportFilter) -> dict:
        return {"range": _range(f), "agents": reports.agent_activity(f)}

    @extend_schema(operation_id="reports_agents", parameters=[ReportFilterSerializer], responses=OutputSerializer)
    def get(self, request: Request) -> Response:
        return super().get(request)


class CsatApi(ReportApi):
    """Satisfaction answers received in the range: count, average, 1-5 distribution, % satisfied (4 or 5)."""

    @extend_schema_serializer(component_name="CsatReport")
    class OutputSerializer(serializers.Serializer):
        range = RangeSerializer()
        count = serializers.IntegerField()
        average = serializers.FloatField(allow_null=True)
        distribution = serializers.DictField(child=serializers.IntegerField(), help_text='{"1": n, ..., "5": n}')
        satisfied_percent = serializers.FloatField(allow_null=True)

    def compute(self, f: ReportFilter) -> dict:
        summary = reports.csat(f)
        return {"range": _range(f), **asdict(summary),
                "distribution": {str(k): v for k, v in summary.distribution.items()}}

    @extend_schema(operation_id="reports_csat", parameters=[ReportFilterSerializer], responses=OutputSerializer)
    def get(self, request: Request) -> Response:
        return super().get(request)
