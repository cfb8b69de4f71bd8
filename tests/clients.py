"""Logged-in API clients for tests."""
from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, Group
from rest_framework.test import APIClient

from helpdesk.roles import MANAGERS_GROUP
from tests.factories import UserFactory


def api_client_for(user: AbstractBaseUser) -> APIClient:
    client = APIClient()
    client.force_login(user)  # a session: each request loads a fresh user, as in production
    return client


def manager_client() -> APIClient:
    manager = UserFactory()
    manager.groups.add(Group.objects.get_or_create(name=MANAGERS_GROUP)[0])
    return api_client_for(manager)
