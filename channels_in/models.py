"""The edges: per-kind channel configuration and the durable log of inbound events."""
from __future__ import annotations

import secrets
import uuid

from django.db import models

from conversations.models import Contact, Conversation, Inbox
from tickets.models import BusinessCalendar


class EmailChannel(models.Model):
    """An email inbox: the support address customers write to and replies come from."""

    inbox = models.OneToOneField(Inbox, on_delete=models.CASCADE, related_name="email_channel")
    address = models.EmailField(unique=True, help_text="Lower-case; plus-addressed replies (local+token@) match too.")
    from_name = models.CharField(max_length=120, blank=True)

    def __str__(self) -> str:
        return self.address

    @property
    def local_part(self) -> str:
        return self.address.partition("@")[0]

    @property
    def domain(self) -> str:
        return self.address.partition("@")[2]


def _new_public_key() -> str:
    return secrets.token_urlsafe(18)


def _new_secret() -> str:
    return secrets.token_urlsafe(32)


class SmsChannel(models.Model):
    """A Twilio number an inbox answers on. Its webhook and status-callback URLs carry `uuid`."""

    inbox = models.OneToOneField(Inbox, on_delete=models.CASCADE, related_name="sms_channel")
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    account_sid = models.CharField(max_length=64)
    auth_token = models.CharField(max_length=128, help_text="Signs Twilio's webhooks and authenticates our API calls.")
    phone_number = models.CharField(max_length=20, unique=True, help_text="E.164, e.g. +14155550100.")
    messaging_service_sid = models.CharField(max_length=64, blank=True, help_text="Optional: send through this Messaging Service.")

    def __str__(self) -> str:
        return self.phone_number


class WebChatChannel(models.Model):
    """The chat widget of an inbox: one `<script>` tag with `public_key` embeds it."""

    inbox = models.OneToOneField(Inbox, on_delete=models.CASCADE, related_name="webchat_channel")
    public_key = models.CharField(max_length=64, unique=True, default=_new_public_key)
    identity_secret = models.CharField(
        max_length=128, default=_new_secret,
        help_text="Signs the site's identity proofs (HS256 JWT, or HMAC-SHA256 of the user id).",
    )
    allowed_origins = models.TextField(
        blank=True,
        help_text="Sites that may embed the widget, one origin per line (https://www.example.com); * allows any.",
    )
    pre_chat_form = models.BooleanField(default=True, help_text="Ask the visitor for a name and an email before the first message.")
    pre_chat_email_required = models.BooleanField(default=False)
    greeting = models.CharField(max_length=300, blank=True, default="Hi! Ask us anything.")
    reply_time_minutes = models.PositiveIntegerField(default=60, help_text="What we tell visitors during business hours.")
    calendar = models.ForeignKey(BusinessCalendar, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    def __str__(self) -> str:
        return f"Web chat of {self.inbox}"

    @property
    def origins(self) -> list[str]:
        return [line.strip().rstrip("/").lower() for line in self.allowed_origins.splitlines() if line.strip()]


class Visitor(models.Model):
    """A widget session. The visitor's token is signed over `uuid`; nothing else names it."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    channel = models.ForeignKey(WebChatChannel, on_delete=models.CASCADE, related_name="visitors")
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="visitors")
    conversation = models.ForeignKey(Conversation, null=True, blank=True, on_delete=models.SET_NULL, related_name="visitors")
    external_user_id = models.CharField(max_length=200, blank=True, help_text="The site's user id, only when proven.")
    name = models.CharField(max_length=200, blank=True)
    email = models.EmailField(blank=True, help_text="Given in the pre-chat form: not verified, grants nothing.")
    created_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    # Connected while this lies in the future: sockets push it forward with their heartbeats.
    online_until = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Visitor {self.uuid}"


class InboundEvent(models.Model):
    """A provider's raw delivery, stored before we answer 200 and processed afterwards."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PROCESSED = "processed", "Processed"
        FAILED = "failed", "Failed"

    provider = models.CharField(max_length=40)
    event_id = models.CharField(max_length=300)
    recipient = models.CharField(max_length=320, blank=True, help_text="Envelope recipient, when the provider gives one.")
    raw = models.BinaryField(help_text="The delivery exactly as received: RFC 822 bytes for most email, Postmark's JSON for Postmark.")
    meta = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    message_id = models.BigIntegerField(null=True, blank=True, help_text="The timeline message it became.")
    swept_at = models.DateTimeField(null=True, blank=True, help_text="When the sweeper last enqueued it again.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["provider", "event_id"], name="inbound_event_unique")]
        indexes = [
            models.Index(fields=["status", "received_at"], name="inbound_pending",
                         condition=models.Q(status="pending")),
        ]

    def __str__(self) -> str:
        return f"{self.provider}:{self.event_id}"
