from django.urls import path
from rest_framework.authtoken.views import obtain_auth_token

from tickets import apis

urlpatterns = [
    path("auth/token/", obtain_auth_token, name="api-token"),
    path("conversations/", apis.ConversationListApi.as_view(), name="api-conversations"),
    path("conversations/<int:conversation_id>/", apis.ConversationDetailApi.as_view(), name="api-conversation"),
    path("conversations/<int:conversation_id>/messages/", apis.MessageListApi.as_view(), name="api-conversation-messages"),
    path("conversations/<int:conversation_id>/reply/", apis.ReplyCreateApi.as_view(), name="api-conversation-reply"),
    path("conversations/<int:conversation_id>/reply-channels/", apis.ReplyChannelListApi.as_view(), name="api-conversation-reply-channels"),
    path("conversations/<int:conversation_id>/merge/", apis.ConversationMergeApi.as_view(), name="api-conversation-merge"),
    path("conversations/<int:conversation_id>/notes/", apis.NoteCreateApi.as_view(), name="api-conversation-notes"),
    path("conversations/<int:conversation_id>/status/", apis.ConversationStatusSetApi.as_view(), name="api-conversation-status"),
    path("conversations/<int:conversation_id>/assign/", apis.ConversationAssignApi.as_view(), name="api-conversation-assign"),
    path("conversations/<int:conversation_id>/priority/", apis.ConversationPrioritySetApi.as_view(), name="api-conversation-priority"),
    path("conversations/<int:conversation_id>/tags/", apis.ConversationTagsSetApi.as_view(), name="api-conversation-tags"),
    path("messages/<int:message_id>/retry/", apis.ReplyRetryApi.as_view(), name="api-message-retry"),
    path("contacts/", apis.ContactListApi.as_view(), name="api-contacts"),
    path("contacts/<int:contact_id>/", apis.ContactDetailApi.as_view(), name="api-contact"),
    path("contacts/<int:contact_id>/merge/", apis.ContactMergeApi.as_view(), name="api-contact-merge"),
    path("events/", apis.EventListApi.as_view(), name="api-events"),
]
