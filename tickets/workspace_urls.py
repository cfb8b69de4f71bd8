"""Dashboard endpoints of the agent workspace: snooze, bulk actions, canned responses,
mentions and the agent's own availability."""
from django.urls import path

urlpatterns: list = []
