"""REST API v1 of the agent workspace: snooze, bulk actions, canned responses.

The same shape as tickets/apis.py: parse -> selector (permission) -> one service -> output.
"""
from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from tickets.apis import ApiErrorsMixin, ConversationSerializer
from tickets.canned import canned_rows
from tickets.selectors import ticket_get_for_agent
from tickets.services import BULK_ACTIONS, BULK_MAX, tickets_bulk_apply
from tickets.snooze import snooze_until_parse, ticket_snooze, ticket_unsnooze

UNTIL_HELP = ('"1h", "4h", "tomorrow" (09:00 next day), "next_week" (Monday 09:00) in the desk\'s time zone, '
              '"reply" (until the customer replies), or an ISO 8601 date and time with its offset.')


@extend_schema_serializer(component_name="SnoozedConversation")
class SnoozedConversationSerializer(ConversationSerializer):
    """A conversation with its snooze: snoozed_at is set while it is snoozed."""

    snoozed_at = serializers.DateTimeField(allow_null=True)
    snoozed_until = serializers.DateTimeField(allow_null=True, help_text="Empty while snoozed: until the customer replies.")
    snoozed_by = serializers.IntegerField(source="snoozed_by_id", allow_null=True, help_text="A user id.")


class ConversationSnoozeApi(ApiErrorsMixin, APIView):
    """Snooze a conversation (POST) or end its snooze (DELETE). Neither the status nor the SLA
    clocks change; a customer message ends the snooze at once."""

    @extend_schema_serializer(component_name="SnoozeInput")
    class InputSerializer(serializers.Serializer):
        until = serializers.CharField(help_text=UNTIL_HELP)

    OutputSerializer = SnoozedConversationSerializer

    @extend_schema(operation_id="conversations_snooze", request=InputSerializer, responses=OutputSerializer)
    def post(self, request: Request, conversation_id: int) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        ticket = ticket_get_for_agent(user=request.user, ticket_id=conversation_id)
        ticket_snooze(ticket=ticket, until=snooze_until_parse(serializer.validated_data["until"]), by=request.user)
        return Response(self.OutputSerializer(ticket_get_for_agent(user=request.user, ticket_id=conversation_id)).data)

    @extend_schema(operation_id="conversations_unsnooze", request=None, responses=OutputSerializer)
    def delete(self, request: Request, conversation_id: int) -> Response:
        ticket = ticket_get_for_agent(user=request.user, ticket_id=conversation_id)
        ticket_unsnooze(ticket=ticket, by=request.user)
        return Response(self.OutputSerializer(ticket_get_for_agent(user=request.user, ticket_id=conversation_id)).data)


@extend_schema_serializer(component_name="BulkSkipped")
class BulkSkippedSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    reason = serializers.CharField()


class ConversationBulkApi(ApiErrorsMixin, APIView):
    """One action over many conversations, each as its single action would do it. A
    conversation outside the agent's inboxes, or one the action cannot apply to, is skipped
    with the reason; the others keep their change."""

    @extend_schema_serializer(component_name="BulkInput")
    class InputSerializer(serializers.Serializer):
        ids = serializers.ListField(child=serializers.IntegerField(min_value=1), allow_empty=False, max_length=BULK_MAX)
        action = serializers.ChoiceField(choices=BULK_ACTIONS)
        value = serializers.CharField(allow_blank=True, required=False, default="", help_text=(
            "assign: a user id, \"me\" or \"\" (unassign); team: a team id or \"\"; status; priority; "
            "tag and untag: a tag name; snooze: as `until` of the snooze endpoint."))

    @extend_schema_serializer(component_name="BulkResult")
    class OutputSerializer(serializers.Serializer):
        updated = serializers.IntegerField()
        skipped = BulkSkippedSerializer(many=True)

    @extend_schema(operation_id="conversations_bulk", request=InputSerializer, responses=OutputSerializer)
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        result = tickets_bulk_apply(user=request.user, ids=data["ids"], action=data["action"], value=data["value"])
        return Response(self.OutputSerializer({"updated": result.updated, "skipped": result.skipped}).data)


@extend_schema_serializer(component_name="CannedResponse")
class CannedResponseSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    title = serializers.CharField()
    shortcut = serializers.CharField()
    body = serializers.CharField(help_text="As written, with its placeholders.")
    text = serializers.CharField(help_text="The body with its placeholders filled; unknown ones stay as written.")


class CannedResponseListApi(ApiErrorsMixin, APIView):
    """The canned responses offered in a conversation (for every inbox or its own), each with
    its placeholders filled for that conversation and the requesting agent."""

    class FilterSerializer(serializers.Serializer):
        conversation = serializers.IntegerField(min_value=1)
        q = serializers.CharField(required=False, allow_blank=True, default="",
                                  help_text="Part of the title, or the start of the shortcut.")

    @extend_schema_serializer(component_name="CannedResponseList")
    class OutputSerializer(serializers.Serializer):
        results = CannedResponseSerializer(many=True)

    @extend_schema(operation_id="canned_responses_list", parameters=[FilterSerializer], responses=OutputSerializer)
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        data = filters.validated_data
        ticket = ticket_get_for_agent(user=request.user, ticket_id=data["conversation"])
        return Response(self.OutputSerializer({"results": canned_rows(ticket=ticket, agent=request.user, q=data["q"])}).data)
