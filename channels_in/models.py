"""The edges: per-kind channel configuration and the durable log of inbound events."""
from __future__ import annotations

from django.db import models

from conversations.models import Inbox


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


class InboundEvent(models.Model):
    """A provider's raw delivery, stored before we answer 200 and processed afterwards."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PROCESSED = "processed", "Processed"
        FAILED = "failed", "Failed"

    provider = models.CharField(max_length=40)
    event_id = models.CharField(max_length=300)
    recipient = models.CharField(max_length=320, blank=True, help_text="Envelope recipient, when the provider gives one.")
    raw = models.BinaryField(help_text="The message exactly as received (RFC 822 bytes for email).")
    meta = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    message_id = models.BigIntegerField(null=True, blank=True, help_text="The timeline message it became.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["provider", "event_id"], name="inbound_event_unique")]
        indexes = [
            models.Index(fields=["status", "received_at"], name="inbound_pending",
                         condition=models.Q(status="pending")),
        ]

    def __str__(self) -> str:
        return f"{self.provider}:{self.event_id}"
