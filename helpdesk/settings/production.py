"""Production: same settings, with the secure defaults a public deployment needs."""
from __future__ import annotations

from helpdesk.env import env_bool, env_int
from helpdesk.settings.base import *  # noqa: F401,F403
from helpdesk.settings.base import SECRET_KEY

if SECRET_KEY.startswith("dev-insecure"):
    raise RuntimeError("Set SECRET_KEY in the environment for production.")
DEBUG = False
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", True)
# Behind a TLS-terminating proxy the public https URL must be rebuilt, or Twilio and
# Mailgun signatures computed over it never match.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
SECURE_CONTENT_TYPE_NOSNIFF = True
