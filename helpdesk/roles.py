"""Who may see what. Agents work the inboxes they belong to; managers see every inbox."""
from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

MANAGERS_GROUP = "Managers"


def is_manager(user: AbstractBaseUser | AnonymousUser) -> bool:
    if not user.is_authenticated:
        return False
    if user.is_superuser:
        return True
    # Cached on the user object: checked on every request of the dashboard and API.
    cached = getattr(user, "_is_manager", None)
    if cached is None:
        cached = user.groups.filter(name=MANAGERS_GROUP).exists()
        user._is_manager = cached
    return cached
