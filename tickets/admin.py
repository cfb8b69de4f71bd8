from django.contrib import admin
from django.urls import URLPattern

from tickets.ical_admin import holidays_import_urls
from tickets.models import (
    AgentStatus,
    BusinessCalendar,
    CannedResponse,
    Holiday,
    InboxCalendar,
    InboxRouting,
    SlaClock,
    SlaEscalation,
    SlaEvent,
    SlaPolicy,
    SlaTarget,
    Tag,
    Team,
    Ticket,
)


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ("name",)
    filter_horizontal = ("members",)


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    search_fields = ("name",)


@admin.register(Ticket)
class TicketAdmin(admin.ModelAdmin):
    list_display = ("conversation_id", "status", "priority", "assignee", "team", "updated_at")
    list_filter = ("status", "priority", "team")
    list_select_related = ("assignee", "team")
    raw_id_fields = ("conversation", "assignee")
    filter_horizontal = ("tags",)


class HolidayInline(admin.TabularInline):
    model = Holiday
    extra = 1


@admin.register(BusinessCalendar)
class BusinessCalendarAdmin(admin.ModelAdmin):
    list_display = ("name", "time_zone")
    inlines = [HolidayInline]

    def get_urls(self) -> list[URLPattern]:
        # <id>/import-holidays/ (upload an .ics); before the defaults, whose catch-all would shadow it.
        return holidays_import_urls(self) + super().get_urls()


@admin.register(InboxCalendar)
class InboxCalendarAdmin(admin.ModelAdmin):
    list_display = ("inbox", "calendar")
    list_select_related = ("inbox", "calendar")


class SlaTargetInline(admin.TabularInline):
    model = SlaTarget
    extra = 0


class SlaEscalationInline(admin.TabularInline):
    model = SlaEscalation
    extra = 0


@admin.register(SlaPolicy)
class SlaPolicyAdmin(admin.ModelAdmin):
    list_display = ("name", "position", "active", "calendar", "warn_at_percent", "updated_at")
    list_editable = ("position", "active")
    filter_horizontal = ("inboxes", "tags")
    inlines = [SlaTargetInline, SlaEscalationInline]


class SlaEventInline(admin.TabularInline):
    model = SlaEvent
    extra = 0
    can_delete = False
    readonly_fields = ("kind", "at", "elapsed", "reason")

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(SlaClock)
class SlaClockAdmin(admin.ModelAdmin):
    """Read-only: clocks are the record of what happened."""

    list_display = ("ticket", "metric", "state", "policy_name", "deadline", "breached_at")
    list_filter = ("metric", "state")
    raw_id_fields = ("ticket", "policy", "message", "calendar")
    inlines = [SlaEventInline]

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(AgentStatus)
class AgentStatusAdmin(admin.ModelAdmin):
    list_display = ("user", "availability", "capacity", "last_assigned_at")
    list_editable = ("availability", "capacity")
    list_select_related = ("user",)


@admin.register(InboxRouting)
class InboxRoutingAdmin(admin.ModelAdmin):
    list_display = ("inbox", "mode", "last_agent")
    list_select_related = ("inbox", "last_agent")
    raw_id_fields = ("last_agent",)


@admin.register(CannedResponse)
class CannedResponseAdmin(admin.ModelAdmin):
    """Saved replies for the composer's picker (tickets/canned.py fills the placeholders)."""

    list_display = ("title", "shortcut", "inbox", "created_by", "updated_at")
    list_filter = ("inbox",)
    list_select_related = ("inbox", "created_by")
    search_fields = ("title", "shortcut", "body")
    readonly_fields = ("created_by",)
    fieldsets = ((None, {
        "fields": ("title", "shortcut", "inbox", "body", "created_by"),
        "description": "Placeholders in the body: {{ contact.name }}, {{ contact.first_name }}, {{ contact.email }}, "
                       "{{ agent.name }}, {{ agent.first_name }}, {{ conversation.id }}, {{ inbox.name }}. "
                       "Anything else stays as written.",
    }),)

    def save_model(self, request, obj, form, change) -> None:
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)
