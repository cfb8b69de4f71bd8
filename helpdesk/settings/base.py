"""Settings shared by every environment. Everything configurable comes from helpdesk.env."""
from __future__ import annotations

from pathlib import Path

import dj_database_url

from helpdesk.env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent.parent

SECRET_KEY = env_str("SECRET_KEY", "dev-insecure-secret-key-change-me")
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
# Public base URL of the desk, used in links inside emails and for Twilio signatures.
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "anymail",
    "channels",
    "corsheaders",
    "conversations",
    "tickets",
    "channels_in",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "helpdesk.middleware.StaticFilesMiddleware",
    "helpdesk.middleware.WebhookBodyLimitMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "helpdesk.middleware.CsrfMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "helpdesk.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "helpdesk.urls"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

ASGI_APPLICATION = "helpdesk.asgi.application"
WSGI_APPLICATION = None

# SQLite (WAL) is the embedded default; DATABASE_URL switches to PostgreSQL.
_default_sqlite = f"sqlite:///{BASE_DIR / 'var' / 'db.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(env_str("DATABASE_URL", _default_sqlite), conn_max_age=env_int("DB_CONN_MAX_AGE", 0))}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and not DATABASES["default"]["CONN_MAX_AGE"]:
    # A new PostgreSQL connection costs ~10 ms (a backend process, authentication, cold
    # caches), more than a whole inbound message. The ASGI server runs each request in a
    # thread of its own, so connections kept per thread would leak: a pool per process
    # instead. Under a burst, requests wait here for a connection (and answer 500 after
    # DB_POOL_TIMEOUT, which providers retry) rather than open connections without bound.
    _pool_size = env_int("DB_POOL_MAX_SIZE", 20)
    if _pool_size > 0:
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": 1, "max_size": _pool_size, "timeout": env_int("DB_POOL_TIMEOUT", 20), "max_idle": 300,
        }
# A reused connection (pooled, or kept by DB_CONN_MAX_AGE) is checked before its first use
# in a request or task, so one broken by a database restart is replaced, not used.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        # IMMEDIATE takes the write lock at BEGIN, so two writers queue instead of
        # failing with "database is locked" when a read snapshot goes stale.
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=20000;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Attachments are private: stored outside STATIC_ROOT and served only through views.
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(BASE_DIR / "var" / "media")))
MEDIA_URL = None

# Provider webhooks post whole messages: Postmark allows 35 MB, Mailgun 25 MB of MIME.
# Django's 2.5 MB default would answer 400 and the provider would give up after retries.
WEBHOOK_MAX_BODY_BYTES = env_int("WEBHOOK_MAX_BODY_BYTES", 50 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = WEBHOOK_MAX_BODY_BYTES
DATA_UPLOAD_MAX_NUMBER_FILES = 100
ATTACHMENT_MAX_BYTES = env_int("ATTACHMENT_MAX_BYTES", 10 * 1024 * 1024)
ATTACHMENT_MAX_COUNT = env_int("ATTACHMENT_MAX_COUNT", 20)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Helpdesk API",
    "DESCRIPTION": "Conversations, timelines, replies and contacts of the support desk.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Two choice sets share the field name "state": name them instead of a hash suffix.
    "ENUM_NAME_OVERRIDES": {
        "SlaClockStateEnum": "tickets.models.SlaClock.State",
        "SlaStateEnum": ["ok", "warning", "breached", "paused"],
    },
    # Swagger UI from our static files (drf-spectacular-sidecar): no CDN in a closed network.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# The desk's own behaviour.
HELPDESK = {
    # Inbound events and fresh replies not handled this long after commit are re-enqueued
    # by the sweeper (their first enqueue was lost: a broker outage or a dead worker).
    "QUEUE_STUCK_AFTER_SECONDS": env_int("QUEUE_STUCK_AFTER_SECONDS", 30),
    # Outbound messages left in "sending" this long (a dead worker) go back to the queue.
    "OUTBOUND_STUCK_AFTER_SECONDS": env_int("OUTBOUND_STUCK_AFTER_SECONDS", 300),
    "SWEEP_INTERVAL_SECONDS": env_int("SWEEP_INTERVAL_SECONDS", 15),
    "OUTBOUND_MAX_ATTEMPTS": env_int("OUTBOUND_MAX_ATTEMPTS", 6),
    "INBOUND_MAX_ATTEMPTS": env_int("INBOUND_MAX_ATTEMPTS", 8),
    # Mailgun signs a timestamp; older posts are replays.
    "MAILGUN_MAX_AGE_SECONDS": env_int("MAILGUN_MAX_AGE_SECONDS", 300),
    # Ask for a 1-5 rating when a conversation is solved, on the channel the customer used.
    "CSAT_ENABLED": env_bool("CSAT_ENABLED", True),
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}

from helpdesk.settings.integrations.anymail import *  # noqa: E402,F401,F403
from helpdesk.settings.integrations.celery import *  # noqa: E402,F401,F403
from helpdesk.settings.integrations.channels import *  # noqa: E402,F401,F403
from helpdesk.settings.integrations.twilio import *  # noqa: E402,F401,F403
from helpdesk.settings.integrations.widget import *  # noqa: E402,F401,F403
