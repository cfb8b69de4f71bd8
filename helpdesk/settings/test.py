"""Test settings: fast hashing, in-memory channel layer unless a test asks for Redis."""
from __future__ import annotations

import os

from helpdesk.settings.base import *  # noqa: F401,F403
from helpdesk.settings.base import BASE_DIR, DATABASES

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
SECRET_KEY = "test-secret-key"
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not :memory:, so Celery worker processes started by integration tests share it.
    # Named per test process so parallel runs never share a file; a worker subprocess
    # started by a test gets the name through TEST_DATABASE_NAME.
    _name = os.environ.get("TEST_DATABASE_NAME") or str(BASE_DIR / "var" / f"test-{os.getpid()}.sqlite3")
    DATABASES["default"]["TEST"] = {"NAME": _name}
MEDIA_ROOT = BASE_DIR / "var" / "test-media"
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
ANYMAIL = {"WEBHOOK_SECRET": "hook:secret-pass", "MAILGUN_WEBHOOK_SIGNING_KEY": "mg-signing-key"}
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Nothing consumes this broker: tests/conftest.py runs enqueued tasks in-process on demand,
# and integration tests point the app at a real Redis.
CELERY_BROKER_URL = "memory://"
