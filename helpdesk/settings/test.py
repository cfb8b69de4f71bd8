"""Test settings: fast hashing, in-memory channel layer unless a test asks for Redis."""
from __future__ import annotations

import copy
import os

from helpdesk.settings.base import *  # noqa: F401,F403
from helpdesk.broker import transport_for
from helpdesk.settings.base import BASE_DIR, DATABASES
from helpdesk.settings.integrations.channels import CHANNEL_LAYERS as REDIS_CHANNEL_LAYERS

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
# The browser tests run the ASGI server in a subprocess: a push from the test process reaches
# it only through a real channel layer, so they point the server at a throwaway Redis (with
# the production layer's settings).
if os.environ.get("TEST_CHANNEL_LAYER_REDIS_URL"):
    CHANNEL_LAYERS = copy.deepcopy(REDIS_CHANNEL_LAYERS)
    CHANNEL_LAYERS["default"]["CONFIG"]["hosts"][0]["address"] = os.environ["TEST_CHANNEL_LAYER_REDIS_URL"]
# That server serves static/ straight from the finders, without a collectstatic step.
WHITENOISE_USE_FINDERS = True
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
ANYMAIL = {"WEBHOOK_SECRET": "hook:secret-pass", "MAILGUN_WEBHOOK_SIGNING_KEY": "mg-signing-key"}
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Nothing consumes this broker: tests/conftest.py runs enqueued tasks in-process on demand,
# and integration tests point the app at a real Redis. The browser tests' ASGI server
# publishes to the Redis their Celery worker consumes (TEST_CELERY_BROKER_URL).
CELERY_BROKER_URL = os.environ.get("TEST_CELERY_BROKER_URL") or "memory://"
CELERY_BROKER_TRANSPORT = transport_for(CELERY_BROKER_URL)
