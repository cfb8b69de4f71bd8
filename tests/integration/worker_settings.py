"""Settings for the Celery worker and beat processes that integration tests start.

The test settings, plus what only those processes need from their environment: the test
process's database file, its throwaway Redis, and the fake provider's address.
"""
from __future__ import annotations

import os

from helpdesk.settings.test import *  # noqa: F401,F403
from helpdesk.settings.test import DATABASES

# The test process's database (pytest-django created it; this process must not create one).
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
