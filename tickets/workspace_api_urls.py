"""API endpoints of the agent workspace (under /api/v1/)."""
from django.urls import path

from tickets import workspace_apis as apis

urlpatterns: list = [
    path("conversations/bulk/", apis.ConversationBulkApi.as_view(), name="api-conversations-bulk"),
    path("conversations/<int:conversation_id>/snooze/", apis.ConversationSnoozeApi.as_view(), name="api-conversation-snooze"),
    path("canned-responses/", apis.CannedResponseListApi.as_view(), name="api-canned-responses"),
]
