"""Who may see what. Three roles, checked the same way by the dashboard, the API and the socket:

- agent: works the inboxes they are a member of (tickets.selectors.inbox_ids_for_agent scopes
  every conversation, message, contact and event read to them; 404 outside);
- manager (group "Managers", or a superuser): every inbox, plus the reports;
- admin (is_staff): the Django admin, where inboxes, members and settings are edited. Being
  staff grants no inbox by itself.
"""
from __future__ import annotations

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model, load_backend
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.contrib.sessions.backends.base import SessionBase
from django.utils.crypto import constant_time_compare

MANAGERS_GROUP = "Managers"


def is_manager(user: AbstractBaseUser | AnonymousUser) -> bool:
    if not user.is_authenticated or not user.is_active:
        return False
    if user.is_superuser:
        return True
    # Cached on the user object: checked on every request of the dashboard and API.
    cached = getattr(user, "_is_manager", None)
    if cached is None:
        cached = user.groups.filter(name=MANAGERS_GROUP).exists()
        user._is_manager = cached
    return cached


def is_admin(user: AbstractBaseUser | AnonymousUser) -> bool:
    """May use the Django admin (the same test as admin.site.has_permission)."""
    return bool(user.is_authenticated and user.is_active and user.is_staff)


def user_for_session(session: SessionBase) -> AbstractBaseUser | None:
    """The active user a session still authenticates, read afresh; None once it does not.

    For connections that outlive the request that opened them (the dashboard's socket): a
    logout (the session row is gone), a password change (the session's auth hash no longer
    matches) or a deactivated account (the backend refuses it) ends them as it ends the
    next HTTP request. Unlike django.contrib.auth.get_user this never writes the session:
    it must not rotate the key under the browser's cookie.
    """
    try:
        user_id = get_user_model()._meta.pk.to_python(session[SESSION_KEY])
        backend_path = session[BACKEND_SESSION_KEY]
        session_hash = session[HASH_SESSION_KEY]
    except KeyError:
        return None
    if backend_path not in settings.AUTHENTICATION_BACKENDS:
        return None
    user = load_backend(backend_path).get_user(user_id)
    if user is None or not user.is_active:
        return None
    hashes = [user.get_session_auth_hash(), *user.get_session_auth_fallback_hash()]
    if not any(constant_time_compare(session_hash, known) for known in hashes):
        return None
    return user
