from django.contrib import admin

from conversations.models import Attachment, Contact, ContactIdentity, Conversation, Inbox, Message


@admin.register(Inbox)
class InboxAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "created_at")
    filter_horizontal = ("members",)


class ContactIdentityInline(admin.TabularInline):
    model = ContactIdentity
    extra = 0


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    list_display = ("__str__", "email", "phone", "created_at")
    search_fields = ("name", "email", "phone", "identities__address")
    inlines = [ContactIdentityInline]


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ("id", "subject", "inbox", "contact", "last_message_at", "message_count")
    list_select_related = ("inbox", "contact")
    list_filter = ("inbox",)
    search_fields = ("subject", "contact__email")
    raw_id_fields = ("contact",)


class AttachmentInline(admin.TabularInline):
    model = Attachment
    extra = 0
    readonly_fields = ("filename", "content_type", "size", "content_id")
    exclude = ("file",)


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("id", "conversation_id", "kind", "channel", "delivery_status", "thread_rule", "created_at")
    list_filter = ("kind", "channel", "delivery_status")
    search_fields = ("rfc_message_id", "external_id", "from_address")
    raw_id_fields = ("conversation", "author_user", "author_contact")
    inlines = [AttachmentInline]
