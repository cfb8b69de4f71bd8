"""Settings for the Celery worker and beat processes that integration tests start.

The test settings, plus what only those processes need from their environment: the test
process's database, its throwaway Redis, and the fake provider's address.
"""
from __future__ import annotations

import os

from django.core.exceptions import ImproperlyConfigured

from helpdesk.settings.test import *  # noqa: F401,F403
from helpdesk.settings.test import DATABASES

# The test process's database (pytest-django created it; this process must not create one).
# SQLite: the file's path. PostgreSQL: test_<name> on the server of DATABASE_URL, which this
# process inherits. A worker on another engine would not see the test's data (and SQLite
# would create a file named after the PostgreSQL database).
if DATABASES["default"]["ENGINE"] != os.environ["TEST_DATABASE_ENGINE"]:
    raise ImproperlyConfigured(
        f"worker database engine {DATABASES['default']['ENGINE']} is not the test process's {os.environ['TEST_DATABASE_ENGINE']}"
    )
DATABASES["default"]["NAME"] = os.environ["TEST_DATABASE_NAME"]
CELERY_BROKER_URL = os.environ["TEST_CELERY_BROKER_URL"]
if os.environ.get("TEST_POSTMARK_API_URL"):
    EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"
    ANYMAIL = {
        "WEBHOOK_SECRET": "hook:secret-pass",
        "POSTMARK_SERVER_TOKEN": os.environ["TEST_POSTMARK_SERVER_TOKEN"],
        "POSTMARK_API_URL": os.environ["TEST_POSTMARK_API_URL"],
        "REQUESTS_TIMEOUT": 30,
    }
