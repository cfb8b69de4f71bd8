from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from channels_in.models import EmailChannel, InboundEvent
from channels_in.services import inbound_event_retry


@admin.register(EmailChannel)
class EmailChannelAdmin(admin.ModelAdmin):
    list_display = ("address", "inbox", "from_name")
    list_select_related = ("inbox",)


@admin.register(InboundEvent)
class InboundEventAdmin(admin.ModelAdmin):
    list_display = ("id", "provider", "event_id", "recipient", "status", "attempts", "received_at", "processed_at")
    list_filter = ("provider", "status")
    search_fields = ("event_id", "recipient")
    readonly_fields = ("provider", "event_id", "recipient", "meta", "status", "attempts", "error", "received_at", "processed_at", "message_id")
    exclude = ("raw",)
    actions = ["retry_failed"]

    @admin.action(description="Process failed events again")
    def retry_failed(self, request: HttpRequest, queryset: QuerySet[InboundEvent]) -> None:
        count = sum(inbound_event_retry(event_id=event.pk) for event in queryset.filter(status=InboundEvent.Status.FAILED))
        self.message_user(request, f"{count} event(s) queued again.", messages.SUCCESS)
