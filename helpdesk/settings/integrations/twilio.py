"""Twilio SMS: where its REST API lives (a local fake in tests and demos) and how long we wait."""
from __future__ import annotations

from helpdesk.env import env_int, env_str

# The real API unless pointed elsewhere; the desk rewrites only the scheme and host.
TWILIO_API_BASE_URL = env_str("TWILIO_API_BASE_URL", "https://api.twilio.com").rstrip("/")
TWILIO_TIMEOUT_SECONDS = env_int("TWILIO_TIMEOUT_SECONDS", 15)
