from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from channels_in.models import EmailChannel, InboundEvent, SmsChannel, Visitor, WebChatChannel
from channels_in.services import inbound_event_retry


@admin.register(EmailChannel)
class EmailChannelAdmin(admin.ModelAdmin):
    list_display = ("address", "inbox", "from_name")
    list_select_related = ("inbox",)


@admin.register(SmsChannel)
class SmsChannelAdmin(admin.ModelAdmin):
    list_display = ("phone_number", "inbox", "account_sid", "webhook_path")
    list_select_related = ("inbox",)
    readonly_fields = ("webhook_path", "status_callback_path")

    @admin.display(description="Messaging webhook (A message comes in)")
    def webhook_path(self, obj: SmsChannel) -> str:
        return f"/twilio/sms/{obj.uuid}/" if obj.pk else "(after saving)"

    @admin.display(description="Status callbacks")
    def status_callback_path(self, obj: SmsChannel) -> str:
        return f"/twilio/status/{obj.uuid}/ (set per message by the desk)" if obj.pk else "(after saving)"


@admin.register(WebChatChannel)
class WebChatChannelAdmin(admin.ModelAdmin):
    list_display = ("inbox", "public_key", "pre_chat_form")
    list_select_related = ("inbox",)
    readonly_fields = ("embed_snippet",)

    @admin.display(description="Embed on your site")
    def embed_snippet(self, obj: WebChatChannel) -> str:
        from django.conf import settings

        return f'<script src="{settings.SITE_URL}/static/widget/widget.js" data-key="{obj.public_key}" async></script>'


@admin.register(Visitor)
class VisitorAdmin(admin.ModelAdmin):
    list_display = ("uuid", "channel", "contact", "conversation", "external_user_id", "last_seen_at")
    list_select_related = ("channel__inbox", "contact", "conversation")
    raw_id_fields = ("contact", "conversation")
    readonly_fields = ("uuid", "created_at", "last_seen_at", "online_until")


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
