from django.urls import path

from tickets import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("c/<int:conversation_id>/", views.dashboard, name="conversation"),
    path("list", views.conversation_list, name="conversation-list"),
    path("c/<int:conversation_id>/timeline", views.conversation_timeline, name="conversation-timeline"),
    path("c/<int:conversation_id>/reply", views.conversation_reply, name="conversation-reply"),
    path("c/<int:conversation_id>/note", views.conversation_note, name="conversation-note"),
    path("c/<int:conversation_id>/status", views.conversation_status, name="conversation-status"),
    path("c/<int:conversation_id>/assign", views.conversation_assign, name="conversation-assign"),
    path("c/<int:conversation_id>/priority", views.conversation_priority, name="conversation-priority"),
    path("c/<int:conversation_id>/tags", views.conversation_tags, name="conversation-tags"),
    path("c/<int:conversation_id>/sla", views.conversation_sla, name="conversation-sla"),
    path("c/<int:conversation_id>/seen", views.conversation_seen, name="conversation-seen"),
    path("c/<int:conversation_id>/merge", views.conversation_merge_into, name="conversation-merge"),
    path("c/<int:conversation_id>/merge-contact", views.contact_merge_into, name="contact-merge"),
    path("notifications", views.notification_list, name="notifications"),
    path("notifications/read", views.notifications_read, name="notifications-read"),
    path("messages/<int:message_id>/retry", views.message_retry, name="message-retry"),
    path("messages/<int:message_id>/html", views.message_html, name="message-html"),
    path("attachments/<uuid:attachment_uuid>/", views.attachment_download, name="attachment-download"),
]
