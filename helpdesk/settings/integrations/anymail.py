"""Email: anymail for every provider. Every ANYMAIL_* variable lands in the ANYMAIL dict."""
from __future__ import annotations

from pathlib import Path

from helpdesk.env import env_list, env_prefixed, env_str

ANYMAIL: dict[str, object] = dict(env_prefixed("ANYMAIL_"))
# WEBHOOK_SECRET may list several "user:pass" values during a rotation.
if "WEBHOOK_SECRET" in ANYMAIL and "," in str(ANYMAIL["WEBHOOK_SECRET"]):
    ANYMAIL["WEBHOOK_SECRET"] = env_list("ANYMAIL_WEBHOOK_SECRET")

# By default outbound mail is written to a local outbox (shown at /outbox/) instead of being
# sent; point EMAIL_BACKEND at an anymail backend (e.g. anymail.backends.postmark.EmailBackend)
# to send for real.
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.filebased.EmailBackend")
EMAIL_FILE_PATH = env_str("EMAIL_FILE_PATH", str(Path(__file__).resolve().parents[3] / "var" / "outbox"))
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "support@example.com")
# Domain used in the Message-IDs the desk generates.
EMAIL_MESSAGE_ID_DOMAIN = env_str("EMAIL_MESSAGE_ID_DOMAIN", DEFAULT_FROM_EMAIL.rpartition("@")[2] or "helpdesk.local")
