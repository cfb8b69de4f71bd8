"""The web chat widget: visitor tokens and the CORS policy of its HTTP fallback."""
from __future__ import annotations

from helpdesk.env import env_int

# A visitor token (signed, never stored) expires after this long without a visit; each
# visit issues a fresh one, so a returning visitor keeps their history.
WIDGET_TOKEN_MAX_AGE_SECONDS = env_int("WIDGET_TOKEN_MAX_AGE_SECONDS", 30 * 24 * 3600)
# Identity proofs (JWT) may not claim a lifetime longer than this.
WIDGET_IDENTITY_MAX_AGE_SECONDS = env_int("WIDGET_IDENTITY_MAX_AGE_SECONDS", 24 * 3600)
WIDGET_MAX_MESSAGE_CHARS = env_int("WIDGET_MAX_MESSAGE_CHARS", 5000)
# A widget socket counts as connected this long after its last heartbeat.
WIDGET_ONLINE_SECONDS = env_int("WIDGET_ONLINE_SECONDS", 60)

# django-cors-headers answers only under /widget/api/, and only for origins the inbox
# allows (channels_in.widget checks each request against its inbox's allowed sites).
CORS_URLS_REGEX = r"^/widget/api/.*$"
CORS_ALLOW_HEADERS = ["authorization", "content-type"]
CORS_ALLOW_CREDENTIALS = False
