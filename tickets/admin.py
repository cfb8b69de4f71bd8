from django.contrib import admin

from tickets.models import BusinessCalendar, Holiday, Tag, Team, Ticket


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
