"""REST API v1: thin views over selectors and services (HackSoft style)."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from tickets.selectors import events_after


class EventListApi(APIView):
    """Realtime events after a sequence number: how a client catches up after a gap."""

    class FilterSerializer(serializers.Serializer):
        after = serializers.IntegerField(min_value=0, default=0)
        limit = serializers.IntegerField(min_value=1, max_value=1000, default=500)

    class OutputSerializer(serializers.Serializer):
        seq = serializers.IntegerField(source="id")
        event = serializers.CharField(source="type")
        inbox_id = serializers.IntegerField()
        conversation_id = serializers.IntegerField(allow_null=True)
        message_id = serializers.IntegerField(allow_null=True)
        created_at = serializers.DateTimeField()

    @extend_schema(parameters=[FilterSerializer], responses=OutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        after = filters.validated_data["after"]
        events = list(events_after(user=request.user, after=after, limit=filters.validated_data["limit"]))
        data = self.OutputSerializer(events, many=True).data
        return Response({"results": data, "last_seq": events[-1].id if events else after})
