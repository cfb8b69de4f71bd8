"""REST API v1: thin views over selectors and services (HackSoft style).

One APIView per operation, named <Entity><Action>Api: parse (InputSerializer /
FilterSerializer) -> selector, which also checks permission (404 outside the agent's
inboxes) -> one service -> OutputSerializer. No business rule lives here.
"""
from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import connections
from django.db.models import F, Model, Q, QuerySet
from django.db.models.constants import LOOKUP_SEP
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_serializer, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, NotFound
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from conversations.models import Channel, ContactIdentity, Message
from conversations.realtime import seq_settled
from conversations.selectors import contact_get_for_agent, contact_list, reply_channels
from conversations.services import ApplicationError, contact_merge, reply_channel_choose, reply_retry
from tickets.models import SlaClock, SlaEvent, SlaMetric, Team, Ticket
from tickets.search import MAX_QUERY_LENGTH, SearchHit, ticket_search
from tickets.selectors import (
    NONE,
    VIEWS,
    ClockReading,
    assignee_get_for_ticket,
    collision_report,
    conversation_id_column,
    events_after,
    message_get_for_agent,
    messages_since_conflicting,
    sla_clocks_for_ticket,
    ticket_get_for_agent,
    ticket_list,
    ticket_list_for_contact,
    timeline,
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

REPLY_CHANNELS = (Channel.EMAIL, Channel.SMS, Channel.WEBCHAT)


# --- Errors and pagination ----------------------------------------------------------------


class ApplicationErrorResponse(APIException):
    """A request valid in form but not allowed in the current state: 400 {"detail": ...}."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid"


class ApiErrorsMixin:
    """Services raise ApplicationError; the API answers it as a 400 with the reason."""

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, ApplicationError):
            exc = ApplicationErrorResponse(str(exc))
        return super().handle_exception(exc)  # type: ignore[misc]


class KeysetCursorPagination(CursorPagination):
    """Cursor pagination on (sort_field DESC, id_field DESC) where sort_field may be NULL.

    DRF's CursorPagination keys on the first ordering field only, breaks ties with an
    offset and cannot encode NULL. This cursor carries both values of the row at the page
    edge, so rows sharing a sort value and rows whose sort value is NULL each appear on
    exactly one page, and rows arriving meanwhile never shift a page.

    NULLs sort where the database puts them (first on PostgreSQL, last on SQLite), so the
    order is exactly the selector's and both use the (sort DESC, id DESC) index. Each page
    is one range scan on that index; a page that crosses the NULL boundary takes a second
    one (an OR of the two ranges would make the database sort the whole table).
    """

    page_size = 25
    page_size_query_param = "page_size"
    max_page_size = 100
    sort_field = ""  # nullable, e.g. "conversation__last_message_at"
    id_field = ""  # unique and not null, e.g. "conversation_id"
    ordering = ()  # unused: the ordering is derived from the two fields above

    def paginate_queryset(self, queryset: QuerySet, request: Request, view: APIView | None = None) -> list[Model]:
        self.request = request
        self.page_size = self.get_page_size(request)
        self.base_url = request.build_absolute_uri()
        self.cursor = self.decode_cursor(request)
        self.key = self._decode_key(queryset.model, self.cursor.position) if self.cursor and self.cursor.position else None
        reverse = bool(self.cursor and self.cursor.reverse and self.key is not None)
        rows: list[Model] = []
        for condition, ordering in self._segments(queryset.db, reverse):
            wanted = self.page_size + 1 - len(rows)
            if wanted <= 0:
                break
            rows += queryset.filter(condition).order_by(*ordering)[:wanted]
        more = len(rows) > self.page_size
        self.page = rows[: self.page_size]
        if reverse:
            self.page.reverse()
            self.has_next, self.has_previous = True, more
        else:
            self.has_next, self.has_previous = more, self.key is not None
        self.display_page_controls = self.has_next or self.has_previous
        return self.page

    def get_next_link(self) -> str | None:
        if not self.has_next:
            return None
        key = self._key_of(self.page[-1]) if self.page else self.key
        return self.encode_cursor(Cursor(offset=0, reverse=False, position=json.dumps(key, default=str)))

    def get_previous_link(self) -> str | None:
        if not self.has_previous:
            return None
        key = self._key_of(self.page[0]) if self.page else self.key
        return self.encode_cursor(Cursor(offset=0, reverse=True, position=json.dumps(key, default=str)))

    def _segments(self, db: str, reverse: bool) -> list[tuple[Q, tuple]]:
        """(condition, ordering) of the index ranges after the key, in the direction of travel."""
        sort, ident = self.sort_field, self.id_field
        desc = not reverse
        # Also for the NULL range: ordering on the (constant) sort value lets the index serve it.
        ident_order = self.id_ordering()
        by_sort = (F(sort).desc(), ident_order.desc()) if desc else (F(sort).asc(), ident_order.asc())
        if self.key is None:
            return [(Q(), by_sort)]  # the first page: the selector's own order
        value, pk = self.key
        nulls_first = connections[db].features.nulls_order_largest  # in DESC order
        nulls_come_last = desc != nulls_first  # in the direction of travel
        past, beyond = ("lt", "lte") if desc else ("gt", "gte")
        if value is None:
            segments = [(Q(**{f"{sort}__isnull": True, f"{ident}__{past}": pk}), by_sort)]
            if not nulls_come_last:
                segments.append((Q(**{f"{sort}__isnull": False}), by_sort))
            return segments
        # `sort <= value` alone bounds the index range; the OR only trims the ties.
        after = Q(**{f"{sort}__{beyond}": value}) & (Q(**{f"{sort}__{past}": value}) | Q(**{f"{ident}__{past}": pk}))
        segments = [(after, by_sort)]
        if nulls_come_last:
            segments.append((Q(**{f"{sort}__isnull": True}), by_sort))
        return segments

    def id_ordering(self) -> Any:
        """What the id tie-break orders by: the id field, unless a subclass knows better."""
        return F(self.id_field)

    def _key_of(self, instance: Model) -> tuple[Any, int]:
        value: Any = instance
        for part in self.sort_field.split(LOOKUP_SEP):
            value = getattr(value, part)
        return (None if value is None else value.isoformat()), getattr(instance, self.id_field)

    def _decode_key(self, model: type[Model], position: str) -> tuple[Any, int]:
        try:
            raw_value, pk = json.loads(position)
            if not isinstance(pk, int) or not (raw_value is None or isinstance(raw_value, str)):
                raise ValueError(position)
            value = None if raw_value is None else self._sort_model_field(model).to_python(raw_value)
            if raw_value is not None and value is None:
                raise ValueError(position)
            return value, pk
        except (ValueError, TypeError, DjangoValidationError):
            raise NotFound(self.invalid_cursor_message) from None

    def _sort_model_field(self, model: type[Model]):
        *relations, name = self.sort_field.split(LOOKUP_SEP)
        for relation in relations:
            model = model._meta.get_field(relation).related_model
        return model._meta.get_field(name)


class ConversationPagination(KeysetCursorPagination):
    # The order of tickets.selectors.ticket_list.
    sort_field = "conversation__last_message_at"
    id_field = "conversation_id"

    def id_ordering(self) -> Any:
        # The same value as conversation_id, written as the conversation's column so the
        # (last_message_at, id) index serves the order (see conversation_id_column).
        return conversation_id_column()


class ContactPagination(CursorPagination):
    page_size = 25
    page_size_query_param = "page_size"
    max_page_size = 100
    ordering = "-id"  # unique and never NULL: DRF's cursor needs nothing more


def paginated_response(*, pagination_class: type, serializer_class: type, queryset: QuerySet, request: Request,
                       view: APIView) -> Response:
    paginator = pagination_class()
    page = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(serializer_class(page, many=True).data)


# --- Shared output shapes -----------------------------------------------------------------


@extend_schema_field(OpenApiTypes.STR)
class _UserNameField(serializers.Field):
    def to_representation(self, user: Any) -> str:
        return user.get_full_name() or user.get_username()


class InboxRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    kind = serializers.CharField(help_text="email, sms or webchat")


class ContactRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    email = serializers.CharField()
    phone = serializers.CharField()


class UserRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = _UserNameField(source="*")


class TeamRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


SLA_STATES = [value for value, _label in Ticket._meta.get_field("sla_state").choices]


class SearchHitPartSerializer(serializers.Serializer):
    text = serializers.CharField()
    hit = serializers.BooleanField(help_text="True for the words that matched.")


class SearchHitSerializer(serializers.Serializer):
    field = serializers.ChoiceField(choices=["message", "subject", "contact"], help_text="Where the words were found.")
    snippet = serializers.SerializerMethodField(help_text="The matching text in parts, plain text (never markup).")

    @extend_schema_field(SearchHitPartSerializer(many=True))
    def get_snippet(self, hit: SearchHit) -> list[dict]:
        return [{"text": text, "hit": is_hit} for text, is_hit in hit.parts]


# Inline in the schema: an enum component would collide with the clock's `state`.
@extend_schema_field({"type": "string", "enum": SLA_STATES})
class _SlaStateField(serializers.CharField):
    pass


class SlaSummarySerializer(serializers.Serializer):
    """The ticket's SLA at a glance, kept by the SLA services (no clock is read)."""

    state = _SlaStateField(source="sla_state", allow_blank=True,
                           help_text="'' (no SLA), ok, warning (at risk), breached or paused")
    due_at = serializers.DateTimeField(source="sla_due_at", allow_null=True,
                                       help_text="The nearest deadline among the running clocks.")


@extend_schema_serializer(component_name="Conversation")
class ConversationSerializer(serializers.Serializer):
    """A conversation with its ticket state; the object is a Ticket (same id)."""

    id = serializers.IntegerField(source="pk")
    subject = serializers.CharField(source="conversation.subject")
    status = serializers.ChoiceField(choices=Ticket.Status.choices)
    priority = serializers.ChoiceField(choices=Ticket.Priority.choices)
    inbox = InboxRefSerializer(source="conversation.inbox")
    contact = ContactRefSerializer(source="conversation.contact")
    assignee = UserRefSerializer(allow_null=True)
    team = TeamRefSerializer(allow_null=True)
    tags = serializers.SerializerMethodField()
    last_message_at = serializers.DateTimeField(source="conversation.last_message_at", allow_null=True)
    last_message_preview = serializers.CharField(source="conversation.last_message_preview")
    last_message_channel = serializers.CharField(source="conversation.last_message_channel",
                                                 help_text="email, sms, webchat, or empty before the first message")
    waiting_since = serializers.DateTimeField(source="conversation.waiting_since", allow_null=True,
                                              help_text="Oldest customer message not answered yet.")
    message_count = serializers.IntegerField(source="conversation.message_count")
    created_at = serializers.DateTimeField(source="conversation.created_at")
    snoozed_at = serializers.DateTimeField(allow_null=True, help_text="Set while snoozed.")
    snoozed_until = serializers.DateTimeField(allow_null=True, help_text="When a snooze ends; empty while snoozed means until the customer writes.")
    merged_into = serializers.IntegerField(
        source="conversation.merged_into_id", allow_null=True,
        help_text="Set when this conversation was merged into another: its messages are there now.")
    sla = SlaSummarySerializer(source="*")
    # Present only in search results (the list's `q`): rows without the attribute skip it.
    search_hit = SearchHitSerializer(required=False, help_text="Search results only: where q matched, with the words marked.")

    def get_tags(self, ticket: Ticket) -> list[str]:
        return [tag.name for tag in ticket.tags.all()]


class SlaEventSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    kind = serializers.ChoiceField(choices=SlaEvent.Kind.choices)
    reason = serializers.CharField()
    elapsed_seconds = serializers.SerializerMethodField(help_text="Time the clock had counted at this moment.")

    def get_elapsed_seconds(self, event: SlaEvent) -> int:
        return int(event.elapsed.total_seconds())


@extend_schema_serializer(component_name="SlaClock")
class SlaClockSerializer(serializers.Serializer):
    """One clock as it reads now; `events` says why."""

    id = serializers.IntegerField(source="clock.pk")
    metric = serializers.ChoiceField(source="clock.metric", choices=SlaMetric.choices)
    state = serializers.ChoiceField(source="clock.state", choices=SlaClock.State.choices)
    policy = serializers.CharField(source="clock.policy_name", help_text="The policy's name when the clock started or was retargeted.")
    target_seconds = serializers.IntegerField(source="clock.target_seconds")
    business_hours = serializers.BooleanField(source="clock.business_hours",
                                              help_text="Counts only the calendar's working time (else real time).")
    calendar = serializers.CharField(source="clock.calendar.name", allow_null=True, default=None)
    started_at = serializers.DateTimeField(source="clock.started_at")
    warn_at = serializers.DateTimeField(source="clock.warn_at", allow_null=True)
    deadline = serializers.DateTimeField(source="clock.deadline", allow_null=True,
                                         help_text="When it breaches if it keeps running (running clocks only).")
    warned_at = serializers.DateTimeField(source="clock.warned_at", allow_null=True)
    breached_at = serializers.DateTimeField(source="clock.breached_at", allow_null=True)
    ended_at = serializers.DateTimeField(source="clock.ended_at", allow_null=True)
    elapsed_seconds = serializers.SerializerMethodField(help_text="Counted so far (business time on a business clock).")
    remaining_seconds = serializers.SerializerMethodField(help_text="Target minus elapsed; negative once passed.")
    breached = serializers.BooleanField()
    events = SlaEventSerializer(many=True)

    def get_elapsed_seconds(self, reading: ClockReading) -> int:
        return int(reading.used.total_seconds())

    def get_remaining_seconds(self, reading: ClockReading) -> int:
        return int(reading.left.total_seconds())


class SlaDetailSerializer(SlaSummarySerializer):
    clocks = serializers.SerializerMethodField()

    @extend_schema_field(SlaClockSerializer(many=True))
    def get_clocks(self, ticket: Ticket) -> list[dict]:
        return SlaClockSerializer(self.context["sla_clocks"], many=True).data


@extend_schema_serializer(component_name="ConversationDetail")
class ConversationDetailSerializer(ConversationSerializer):
    """The conversation with its SLA clocks and their event logs (context: sla_clocks)."""

    sla = SlaDetailSerializer(source="*")


def conversation_detail(*, request: Request, conversation_id: int) -> Response:
    """The detail shape, read afresh (after a change: the new state and clock events)."""
    ticket = ticket_get_for_agent(user=request.user, ticket_id=conversation_id)
    clocks = sla_clocks_for_ticket(ticket=ticket)
    return Response(ConversationDetailSerializer(ticket, context={"sla_clocks": clocks}).data)


class AuthorSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=[("user", "Agent"), ("contact", "Customer")])
    id = serializers.IntegerField()
    name = serializers.CharField()


class AttachmentSerializer(serializers.Serializer):
    uuid = serializers.UUIDField()
    filename = serializers.CharField()
    content_type = serializers.CharField()
    size = serializers.IntegerField()
    url = serializers.SerializerMethodField()

    def get_url(self, attachment: Any) -> str:
        return reverse("attachment-download", args=[attachment.uuid])


@extend_schema_serializer(component_name="Message")
class MessageSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=Message.Kind.choices)
    channel = serializers.CharField(help_text="email, sms, webchat or internal")
    author = serializers.SerializerMethodField()
    from_address = serializers.CharField()
    to_address = serializers.CharField()
    subject = serializers.CharField()
    text = serializers.CharField()
    text_display = serializers.CharField(help_text="The new part only: quotes and signature folded away.")
    has_html = serializers.SerializerMethodField()
    thread_rule = serializers.CharField(help_text="How the message was threaded into this conversation.")
    delivery_status = serializers.CharField(help_text="'' (not delivered by us), queued, sending, sent, delivered or failed")
    delivery_error = serializers.CharField()
    notices = serializers.ListField(child=serializers.CharField())
    attachments = AttachmentSerializer(many=True)
    created_at = serializers.DateTimeField()

    @extend_schema_field(AuthorSerializer(allow_null=True))
    def get_author(self, message: Message) -> dict | None:
        if message.author_user_id is not None:
            user = message.author_user
            return {"type": "user", "id": user.pk, "name": user.get_full_name() or user.get_username()}
        if message.author_contact_id is not None:
            return {"type": "contact", "id": message.author_contact_id, "name": message.author_contact.display_name}
        return None

    def get_has_html(self, message: Message) -> bool:
        return bool(message.html)


# --- Conversations ------------------------------------------------------------------------


class _IdOrNoneField(serializers.CharField):
    """An id, or "none" for nobody."""

    def to_internal_value(self, data: Any) -> int | str:
        value = super().to_internal_value(data).strip().lower()
        if value == NONE:
            return NONE
        if not value.isdigit() or len(value) > 18 or int(value) < 1:
            raise serializers.ValidationError('An id or "none".')
        return int(value)


class ConversationListApi(ApiErrorsMixin, APIView):
    """The agent's conversations, newest activity first (the dashboard's inbox list).

    `view` picks the list (a snoozed conversation is only in "snoozed"); the filters narrow
    it. With `q`, the list is the full-text search's matches instead (message text, contact
    name, email and phone, subject; every status, snoozed ones included; the filters still
    apply), each row with its `search_hit`. Phrases in quotes, OR, and -word to exclude.
    """

    pagination_class = ConversationPagination

    class FilterSerializer(serializers.Serializer):
        view = serializers.CharField(default="open", max_length=40,
                                     help_text=f"One of {', '.join(VIEWS)}, team:<id> or inbox:<id>.")
        q = serializers.CharField(required=False, max_length=MAX_QUERY_LENGTH, help_text="Full-text search.")
        status = serializers.ChoiceField(choices=Ticket.Status.choices, required=False)
        inbox = serializers.IntegerField(min_value=1, required=False)
        assignee = _IdOrNoneField(required=False, help_text='A user id, or "none" for unassigned.')
        team = _IdOrNoneField(required=False, help_text='A team id, or "none" for no team.')
        channel = serializers.ChoiceField(choices=[(c.value, c.label) for c in REPLY_CHANNELS], required=False,
                                          help_text="The channel of the latest message.")
        priority = serializers.ChoiceField(choices=Ticket.Priority.choices, required=False)
        tag = serializers.ListField(child=serializers.SlugField(max_length=60), required=False, max_length=20,
                                    help_text="Repeatable: conversations with any of these tags.")
        created_after = serializers.DateField(required=False, help_text="Created on or after this day (YYYY-MM-DD).")
        created_before = serializers.DateField(required=False, help_text="Created on or before this day (YYYY-MM-DD).")

        def validate_view(self, value: str) -> str:
            if view_parse(value) is None:
                raise serializers.ValidationError(f"One of {', '.join(VIEWS)}, team:<id> or inbox:<id>.")
            return value

    OutputSerializer = ConversationSerializer

    @extend_schema(operation_id="conversations_list", parameters=[FilterSerializer],
                   responses=OutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        data = filters.validated_data
        q = data.get("q", "").strip()
        hits = ticket_search(user=request.user, q=q) if q else None
        tickets = ticket_list(user=request.user, view=data["view"], status=data.get("status", ""),
                              inbox_id=data.get("inbox"), assignee_id=data.get("assignee"), channel=data.get("channel", ""),
                              priority=data.get("priority", ""), tags=[t.lower() for t in data.get("tag", [])],
                              team_id=data.get("team"), created_after=data.get("created_after"),
                              created_before=data.get("created_before"), ticket_ids=None if hits is None else list(hits))
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(tickets, request, view=self)
        for ticket in page if hits else ():
            ticket.search_hit = hits[ticket.pk]
        return paginator.get_paginated_response(self.OutputSerializer(page, many=True).data)


class ConversationDetailApi(ApiErrorsMixin, APIView):
    """One conversation with its ticket state and SLA clocks (404 outside the agent's inboxes)."""

    OutputSerializer = ConversationDetailSerializer

    @extend_schema(operation_id="conversations_retrieve", responses=OutputSerializer)
    def get(self, request: Request, conversation_id: int) -> Response:
        return conversation_detail(request=request, conversation_id=conversation_id)


class ConversationPrioritySetApi(ApiErrorsMixin, APIView):
    """Set the priority; the SLA policy is matched again and running clocks take the new
    targets from now on (time already counted stays)."""

    @extend_schema_serializer(component_name="PriorityInput")
    class InputSerializer(serializers.Serializer):
        priority = serializers.ChoiceField(choices=Ticket.Priority.choices)

    OutputSerializer = ConversationDetailSerializer

    @extend_schema(operation_id="conversations_priority_set", request=InputSerializer, responses=OutputSerializer)
    def post(self, request: Request, conversation_id: int) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        ticket = ticket_get_for_agent(user=request.user, ticket_id=conversation_id)
        ticket_set_priority(ticket=ticket, priority=serializer.validated_data["priority"], by=request.user)
        return conversation_detail(request=request, conversation_id=conversation_id)


class ConversationTagsSetApi(ApiErrorsMixin, APIView):
    """Replace the tags (created as needed, lower case); the SLA policy is matched again."""

    @extend_schema_serializer(component_name="TagsInput")
    class InputSerializer(serializers.Serializer):
        tags = serializers.ListField(child=serializers.SlugField(max_length=60), max_length=50, allow_empty=True,
                                     help_text="The complete set; [] removes every tag.")

    OutputSerializer = ConversationDetailSerializer

    @extend_schema(operation_id="conversations_tags_set", request=InputSerializer, responses=OutputSerializer)
    def post(self, request: Request, conversation_id: int) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        ticket = ticket_get_for_agent(user=request.user, ticket_id=conversation_id)
        ticket_set_tags(ticket=ticket, names=serializer.validated_data["tags"], by=request.user)
        return conversation_detail(request=request, conversation_id=conversation_id)


class MessageListApi(ApiErrorsMixin, APIView):
    """The conversation's timeline, oldest first: the latest `limit` messages."""

    class FilterSerializer(serializers.Serializer):
        limit = serializers.IntegerField(min_value=1, max_value=1000, default=500)

    @extend_schema_serializer(component_name="Timeline")
    class OutputSerializer(serializers.Serializer):
        results = MessageSerializer(many=True)
        has_earlier = serializers.BooleanField(help_text="True when older messages were left out by `limit`.")

    @extend_schema(operation_id="conversations_messages_list", parameters=[FilterSerializer],
                   responses=OutputSerializer)
    def get(self, request: Request, conversation_id: int) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        limit = filters.validated_data["limit"]
        ticket = ticket_get_for_agent(user=request.user, ticket_id=conversation_id)
        # Newest `limit` (one extra tells whether more exist), shown oldest first.
        newest = list(timeline(conversation_id=ticket.pk).reverse()[: limit + 1])
        messages = newest[:limit][::-1]
        return Response(self.OutputSerializer({"results": messages, "has_earlier": len(newest) > limit}).data)


SEEN_MESSAGE_HELP = ("The newest message id the writer had seen. When given, the message is not sent if a customer "
                     "message or another agent's reply arrived after it (409 with them), unless confirm is true.")
CONFIRM_HELP = "Send even though new messages arrived (after a 409)."


class ConflictSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField(help_text="inbound (the customer) or outbound (another agent's reply)")
    author = serializers.CharField()
    preview = serializers.CharField()
    created_at = serializers.DateTimeField()


@extend_schema_serializer(component_name="Collision")
class CollisionSerializer(serializers.Serializer):
    error = serializers.CharField()
    conflict = ConflictSerializer(many=True, help_text="What arrived since seen_message_id, newest first.")


def collision_response(*, request: Request, ticket: Ticket, data: dict) -> Response | None:
    """409 when messages arrived since the writer's seen_message_id (and they did not confirm)."""
    seen = data.get("seen_message_id")
    if seen is None or data.get("confirm"):
        return None
    conflicts = messages_since_conflicting(conversation_id=ticket.pk, after_id=seen, user=request.user)
    if not conflicts:
        return None
    return Response(collision_report(messages=conflicts), status=status.HTTP_409_CONFLICT)


class ReplyCreateApi(ApiErrorsMixin, APIView):
    """Queue an agent reply to the customer; delivery runs in a worker after commit."""

    @extend_schema_serializer(component_name="ReplyInput")
    class InputSerializer(serializers.Serializer):
        # Whitespace is the agent's own formatting; a blank reply is refused by the service.
        text = serializers.CharField(trim_whitespace=False)
        channel = serializers.ChoiceField(
            choices=[(c.value, c.label) for c in REPLY_CHANNELS], required=False,
            help_text="One of the conversation's reply channels (see reply-channels/); defaults to the channel "
                      "of the customer's latest message. 400 with the reason when the conversation cannot be "
                      "answered on it (e.g. the number opted out of SMS).")
        seen_message_id = serializers.IntegerField(required=False, min_value=0, help_text=SEEN_MESSAGE_HELP)
        confirm = serializers.BooleanField(default=False, help_text=CONFIRM_HELP)

    OutputSerializer = MessageSerializer

    @extend_schema(operation_id="conversations_reply_create", request=InputSerializer,
                   responses={201: OutputSerializer, 409: CollisionSerializer})
    def post(self, request: Request, conversation_id: int) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        ticket = ticket_get_for_agent(user=request.user, ticket_id=conversation_id)
        collision = collision_response(request=request, ticket=ticket, data=data)
        if collision is not None:
            return collision
        channel = reply_channel_choose(conversation=ticket.conversation, channel=data.get("channel"))
        message = ticket_reply_create(ticket=ticket, author=request.user, text=data["text"], channel=channel)
        return Response(self.OutputSerializer(message).data, status=status.HTTP_201_CREATED)


class ReplyChannelListApi(ApiErrorsMixin, APIView):
    """The channels the agent can answer this conversation on, the default first."""

    @extend_schema_serializer(component_name="ReplyChannel")
    class OutputSerializer(serializers.Serializer):
        channel = serializers.CharField(help_text="email, sms or webchat")
        label = serializers.CharField()
        address = serializers.CharField(help_text="Where the reply goes: an email address, a phone number, the visitor.")
        available = serializers.BooleanField()
        reason = serializers.CharField(help_text="Why not, when unavailable (e.g. the number opted out of SMS).")

    @extend_schema(operation_id="conversations_reply_channels", responses=OutputSerializer(many=True))
    def get(self, request: Request, conversation_id: int) -> Response:
        ticket = ticket_get_for_agent(user=request.user, ticket_id=conversation_id)
        return Response(self.OutputSerializer(reply_channels(ticket.conversation), many=True).data)


class ConversationMergeApi(ApiErrorsMixin, APIView):
    """Merge this conversation into another: its messages move there, this one is closed.

    Both must lie in the agent's inboxes (404 otherwise). Afterwards this conversation's detail
    shows `merged_into`.
    """

    @extend_schema_serializer(component_name="ConversationMergeInput")
    class InputSerializer(serializers.Serializer):
        into = serializers.IntegerField(min_value=1, help_text="The conversation that keeps the merged history.")

    OutputSerializer = ConversationSerializer

    @extend_schema(operation_id="conversations_merge", request=InputSerializer, responses=OutputSerializer)
    def post(self, request: Request, conversation_id: int) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        source = ticket_get_for_agent(user=request.user, ticket_id=conversation_id)
        target = ticket_get_for_agent(user=request.user, ticket_id=serializer.validated_data["into"])
        conversation_merge(source=source, target=target, by=request.user)
        return Response(self.OutputSerializer(ticket_get_for_agent(user=request.user, ticket_id=target.pk)).data)


class NoteCreateApi(ApiErrorsMixin, APIView):
    """An internal note: visible to agents only, never sent."""

    @extend_schema_serializer(component_name="NoteInput")
    class InputSerializer(serializers.Serializer):
        text = serializers.CharField(trim_whitespace=False)
        seen_message_id = serializers.IntegerField(required=False, min_value=0, help_text=SEEN_MESSAGE_HELP)
        confirm = serializers.BooleanField(default=False, help_text=CONFIRM_HELP)

    OutputSerializer = MessageSerializer

    @extend_schema(operation_id="conversations_notes_create", request=InputSerializer,
                   responses={201: OutputSerializer, 409: CollisionSerializer})
    def post(self, request: Request, conversation_id: int) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        ticket = ticket_get_for_agent(user=request.user, ticket_id=conversation_id)
        collision = collision_response(request=request, ticket=ticket, data=serializer.validated_data)
        if collision is not None:
            return collision
        message = ticket_note_create(ticket=ticket, author=request.user, text=serializer.validated_data["text"])
        return Response(self.OutputSerializer(message).data, status=status.HTTP_201_CREATED)


class ConversationStatusSetApi(ApiErrorsMixin, APIView):
    """Move the ticket to another status; the timeline records who did it."""

    @extend_schema_serializer(component_name="StatusInput")
    class InputSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=Ticket.Status.choices)

    OutputSerializer = ConversationSerializer

    @extend_schema(operation_id="conversations_status_set", request=InputSerializer, responses=OutputSerializer)
    def post(self, request: Request, conversation_id: int) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        ticket = ticket_get_for_agent(user=request.user, ticket_id=conversation_id)
        ticket_set_status(ticket=ticket, status=serializer.validated_data["status"], by=request.user)
        ticket = ticket_get_for_agent(user=request.user, ticket_id=conversation_id)
        return Response(self.OutputSerializer(ticket).data)


class ConversationAssignApi(ApiErrorsMixin, APIView):
    """Give the conversation to an agent of its inbox (or a manager), or to nobody."""

    @extend_schema_serializer(component_name="AssignInput")
    class InputSerializer(serializers.Serializer):
        assignee = serializers.IntegerField(allow_null=True, help_text="A user id, or null to unassign.")
        team = serializers.PrimaryKeyRelatedField(queryset=Team.objects.all(), required=False,
                                                  help_text="A team id; left unchanged when absent.")

    OutputSerializer = ConversationSerializer

    @extend_schema(operation_id="conversations_assign", request=InputSerializer, responses=OutputSerializer)
    def post(self, request: Request, conversation_id: int) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        ticket = ticket_get_for_agent(user=request.user, ticket_id=conversation_id)
        assignee = None
        if data["assignee"] is not None:
            assignee = assignee_get_for_ticket(ticket=ticket, user_id=data["assignee"])
            if assignee is None:
                raise serializers.ValidationError(
                    {"assignee": [f"User {data['assignee']} is not a member of this inbox, nor a manager."]})
        ticket_assign(ticket=ticket, assignee=assignee, by=request.user, team=data.get("team"))
        ticket = ticket_get_for_agent(user=request.user, ticket_id=conversation_id)
        return Response(self.OutputSerializer(ticket).data)


class ReplyRetryApi(ApiErrorsMixin, APIView):
    """Send a failed reply again."""

    OutputSerializer = MessageSerializer

    @extend_schema(operation_id="messages_retry", request=None, responses=OutputSerializer)
    def post(self, request: Request, message_id: int) -> Response:
        message = message_get_for_agent(user=request.user, message_id=message_id)
        reply_retry(message=message)
        message = message_get_for_agent(user=request.user, message_id=message_id)
        return Response(self.OutputSerializer(message).data)


# --- Contacts -----------------------------------------------------------------------------


@extend_schema_serializer(component_name="Contact")
class ContactSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    email = serializers.CharField()
    phone = serializers.CharField()
    created_at = serializers.DateTimeField()
    merged_into = serializers.IntegerField(source="merged_into_id", allow_null=True,
                                           help_text="Set when this contact was merged into another.")


class ContactListApi(ApiErrorsMixin, APIView):
    """Contacts with a conversation in the agent's inboxes (every contact for managers)."""

    pagination_class = ContactPagination

    class FilterSerializer(serializers.Serializer):
        q = serializers.CharField(required=False, max_length=200, help_text="Part of the name, email or phone.")

    OutputSerializer = ContactSerializer

    @extend_schema(operation_id="contacts_list", parameters=[FilterSerializer], responses=OutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        contacts = contact_list(user=request.user, q=filters.validated_data.get("q", ""))
        return paginated_response(pagination_class=self.pagination_class, serializer_class=self.OutputSerializer,
                                  queryset=contacts, request=request, view=self)


class IdentitySerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=ContactIdentity.Kind.choices)
    address = serializers.CharField()
    sms_opted_out_at = serializers.DateTimeField(allow_null=True, help_text="Phone numbers: when the number opted out of SMS.")
    sms_consent_keyword = serializers.CharField(help_text="Phone numbers: the keyword or error code of the last consent change.")


@extend_schema_serializer(component_name="ContactConversation")
class ContactConversationSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    subject = serializers.CharField(source="conversation.subject")
    status = serializers.ChoiceField(choices=Ticket.Status.choices)
    inbox = InboxRefSerializer(source="conversation.inbox")
    last_message_at = serializers.DateTimeField(source="conversation.last_message_at", allow_null=True)
    last_message_preview = serializers.CharField(source="conversation.last_message_preview")
    created_at = serializers.DateTimeField(source="conversation.created_at")


class ContactDetailApi(ApiErrorsMixin, APIView):
    """A contact with the ways to reach them and their conversations the agent may see."""

    @extend_schema_serializer(component_name="ContactDetail")
    class OutputSerializer(ContactSerializer):
        identities = IdentitySerializer(many=True)
        conversations = serializers.SerializerMethodField(
            help_text="The contact's conversations in the agent's inboxes, newest activity first (at most 100).")

        @extend_schema_field(ContactConversationSerializer(many=True))
        def get_conversations(self, contact: Any) -> list[dict]:
            return ContactConversationSerializer(self.context["conversations"], many=True).data

    @extend_schema(operation_id="contacts_retrieve", responses=OutputSerializer)
    def get(self, request: Request, contact_id: int) -> Response:
        contact = contact_get_for_agent(user=request.user, contact_id=contact_id)
        conversations = ticket_list_for_contact(user=request.user, contact_id=contact.pk)
        return Response(self.OutputSerializer(contact, context={"conversations": conversations}).data)


class ContactMergeApi(ApiErrorsMixin, APIView):
    """Merge this contact into another: identities, conversations and visitors move there.

    The agent must see both contacts (404 otherwise). This contact keeps its row, pointing at
    the other (`merged_into`).
    """

    @extend_schema_serializer(component_name="ContactMergeInput")
    class InputSerializer(serializers.Serializer):
        into = serializers.IntegerField(min_value=1, help_text="The contact that remains.")

    OutputSerializer = ContactDetailApi.OutputSerializer

    @extend_schema(operation_id="contacts_merge", request=InputSerializer, responses=OutputSerializer)
    def post(self, request: Request, contact_id: int) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        source = contact_get_for_agent(user=request.user, contact_id=contact_id)
        target = contact_get_for_agent(user=request.user, contact_id=serializer.validated_data["into"])
        contact_merge(source=source, target=target, by=request.user)
        target = contact_get_for_agent(user=request.user, contact_id=target.pk)
        conversations = ticket_list_for_contact(user=request.user, contact_id=target.pk)
        return Response(self.OutputSerializer(target, context={"conversations": conversations}).data)


# --- Realtime catch-up --------------------------------------------------------------------


class EventListApi(APIView):
    """Realtime events after a sequence number: how a client catches up after a gap."""

    class FilterSerializer(serializers.Serializer):
        after = serializers.IntegerField(min_value=0, default=0)
        limit = serializers.IntegerField(min_value=1, max_value=1000, default=500)

    @extend_schema_serializer(component_name="Event")
    class OutputSerializer(serializers.Serializer):
        seq = serializers.IntegerField(source="id")
        event = serializers.CharField(source="type")
        inbox_id = serializers.IntegerField()
        conversation_id = serializers.IntegerField(allow_null=True)
        message_id = serializers.IntegerField(allow_null=True)
        created_at = serializers.DateTimeField()

    @extend_schema(parameters=[FilterSerializer], responses=inline_serializer(
        name="EventPage", fields={"results": OutputSerializer(many=True), "last_seq": serializers.IntegerField()}))
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        after = filters.validated_data["after"]
        events = list(events_after(user=request.user, after=after, limit=filters.validated_data["limit"]))
        data = self.OutputSerializer(events, many=True).data
        # Never past an event still being committed (a gap that may fill): the next catch-up
        # fetches it instead of skipping it for good.
        last_seq = seq_settled(after=after, upto=events[-1].id) if events else after
        return Response({"results": data, "last_seq": last_seq})

