"""API endpoints of the agent workspace (under /api/v1/)."""
from django.urls import path

urlpatterns: list = []
