"""Dashboard endpoints of the agent workspace: snooze, bulk actions, canned responses,
mentions and the agent's own availability."""
from django.urls import path

from tickets import workspace_views as views

urlpatterns: list = [
    path("c/<int:conversation_id>/snooze", views.conversation_snooze, name="conversation-snooze"),
    path("c/<int:conversation_id>/unsnooze", views.conversation_unsnooze, name="conversation-unsnooze"),
    path("c/<int:conversation_id>/team", views.conversation_team, name="conversation-team"),
    path("bulk", views.bulk, name="conversations-bulk"),
    path("canned", views.canned_responses, name="canned-responses"),
    path("mentionable", views.mentionable, name="mentionable"),
    path("me/availability", views.my_availability, name="my-availability"),
]
