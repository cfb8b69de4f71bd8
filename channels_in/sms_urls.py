"""Twilio's webhooks, one pair per SMS channel (mounted at /twilio/)."""
from __future__ import annotations

from django.urls import path

from channels_in.webhooks import twilio

urlpatterns = [
    path("sms/<uuid:channel_uuid>/", twilio.sms_inbound, name="twilio_sms_inbound"),
    path("status/<uuid:channel_uuid>/", twilio.sms_status, name="twilio_sms_status"),
]
