"""What was said: inboxes, contacts, conversations and their one timeline of messages."""
from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    SMS = "sms", "SMS"
    WEBCHAT = "webchat", "Web chat"
    INTERNAL = "internal", "Internal"


class Inbox(models.Model):
    """Where customers write to. Shared rules attach here; credentials live per channel kind."""

    name = models.CharField(max_length=120)
    kind = models.CharField(max_length=16, choices=Channel.choices)
    created_at = models.DateTimeField(auto_now_add=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="inboxes")

    class Meta:
        verbose_name_plural = "inboxes"

    def __str__(self) -> str:
        return self.name


class Contact(models.Model):
    name = models.CharField(max_length=200, blank=True)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=32, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # A merged contact keeps its row (and its id in old links) and points at the survivor.
    merged_into = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="merged_from")
    merged_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name or self.email or self.phone or f"Contact {self.pk}"

    @property
    def display_name(self) -> str:
        return str(self)


class ContactIdentity(models.Model):
    """One way to reach a contact: an email address, a phone number, a widget visitor."""

    class Kind(models.TextChoices):
        EMAIL = "email", "Email"
        PHONE = "phone", "Phone"
        VISITOR = "visitor", "Web chat visitor"
        EXTERNAL = "external", "Site user id"

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="identities")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    address = models.CharField(max_length=320, help_text="Normalised: lower-case email, E.164 phone.")
    created_at = models.DateTimeField(auto_now_add=True)
    # SMS consent of a phone identity (STOP / START keywords, or the carrier's 21610 refusal).
    # Kept per customer number: a STOP to any of our numbers stops SMS from all of them.
    sms_opted_out_at = models.DateTimeField(null=True, blank=True)
    sms_consent_keyword = models.CharField(max_length=32, blank=True, help_text="The keyword or error code of the last change.")
    sms_consent_changed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["kind", "address"], name="identity_unique_kind_address")]
        verbose_name_plural = "contact identities"

    def __str__(self) -> str:
        return f"{self.kind}:{self.address}"


class Conversation(models.Model):
    """One threaded timeline, whichever channels its messages came through."""

    inbox = models.ForeignKey(Inbox, on_delete=models.PROTECT, related_name="conversations")
    contact = models.ForeignKey(Contact, on_delete=models.PROTECT, related_name="conversations")
    subject = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # Denormalised so the inbox list needs no per-row aggregate.
    last_message_at = models.DateTimeField(null=True, blank=True)
    last_message_preview = models.CharField(max_length=200, blank=True)
    last_message_channel = models.CharField(max_length=16, choices=Channel.choices, blank=True)
    # Oldest customer message not yet answered by an agent (None when the agent spoke last).
    waiting_since = models.DateTimeField(null=True, blank=True)
    message_count = models.PositiveIntegerField(default=0)
    # Seen receipts: when an agent last opened the conversation, when the customer last saw it.
    agent_last_seen_at = models.DateTimeField(null=True, blank=True)
    contact_last_seen_at = models.DateTimeField(null=True, blank=True)
    # A conversation merged into another keeps its id (old links redirect) and no messages.
    merged_into = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="merged_from")
    merged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["-last_message_at", "-id"], name="conv_last_message")]

    def __str__(self) -> str:
        return f"#{self.pk} {self.subject}"


class Message(models.Model):
    class Kind(models.TextChoices):
        INBOUND = "inbound", "From the customer"
        OUTBOUND = "outbound", "Reply"
        NOTE = "note", "Internal note"
        SYSTEM = "system", "System event"

    class DeliveryStatus(models.TextChoices):
        # Ordered: a status only ever moves to a later one (see DELIVERY_ORDER).
        NONE = "", "n/a"
        QUEUED = "queued", "Queued"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        DELIVERED = "delivered", "Delivered"
        READ = "read", "Seen"
        FAILED = "failed", "Failed"

    class ThreadRule(models.TextChoices):
        NEW = "new", "New conversation"
        IN_REPLY_TO = "in_reply_to", "In-Reply-To header"
        REFERENCES = "references", "References header"
        REPLY_TOKEN = "reply_token", "Signed reply address"
        SUBJECT_TAG = "subject_tag", "Subject tag from a participant"
        SENDER = "sender", "Latest conversation of this number"
        AGENT = "agent", "Written in the desk"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    channel = models.CharField(max_length=16, choices=Channel.choices)
    author_user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    author_contact = models.ForeignKey(Contact, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    from_address = models.CharField(max_length=320, blank=True)
    to_address = models.CharField(max_length=320, blank=True)
    subject = models.CharField(max_length=500, blank=True)
    text = models.TextField(blank=True, help_text="The full plain text, quotes included.")
    text_display = models.TextField(blank=True, help_text="The new part only: quotes and signature folded away.")
    html = models.TextField(blank=True, help_text="Sanitised HTML (nh3); remote images marked, cid: rewritten.")
    # The channel's own id: inbound Message-ID / MessageSid, or the provider id after sending.
    external_id = models.CharField(max_length=500, null=True, blank=True)
    # RFC 5322 Message-ID (without <>), inbound or generated by us for outbound email.
    rfc_message_id = models.CharField(max_length=500, blank=True, db_index=True)
    in_reply_to = models.CharField(max_length=500, blank=True)
    references = models.TextField(blank=True)
    thread_rule = models.CharField(max_length=16, choices=ThreadRule.choices, blank=True)
    delivery_status = models.CharField(max_length=16, choices=DeliveryStatus.choices, blank=True, default="")
    delivery_error = models.TextField(blank=True)
    # Things the agent should know about this message (e.g. an attachment refused and why).
    notices = models.JSONField(default=list, blank=True)
    delivery_attempts = models.PositiveSmallIntegerField(default=0)
    # When the outbox should next try; the sweeper enqueues rows whose time has come.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    delivery_updated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "external_id"],
                condition=Q(external_id__isnull=False),
                name="message_unique_channel_external_id",
            ),
        ]
        indexes = [
            models.Index(fields=["conversation", "created_at", "id"], name="msg_timeline"),
            models.Index(fields=["delivery_status", "next_attempt_at"], name="msg_outbox",
                         condition=Q(delivery_status__in=["queued", "sending"])),
            models.Index(fields=["external_id"], name="msg_external_id"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} in conversation {self.conversation_id}"


DELIVERY_ORDER = {
    Message.DeliveryStatus.NONE: 0,
    Message.DeliveryStatus.QUEUED: 1,
    Message.DeliveryStatus.SENDING: 2,
    Message.DeliveryStatus.SENT: 3,
    Message.DeliveryStatus.DELIVERED: 4,
    Message.DeliveryStatus.FAILED: 4,
    # The customer saw it (web chat "seen", an SMS read receipt): nothing comes after.
    Message.DeliveryStatus.READ: 5,
}


def _attachment_path(instance: "Attachment", filename: str) -> str:
    # Never the sender's filename: it may hold path tricks or collide.
    return f"attachments/{instance.uuid.hex[:2]}/{instance.uuid.hex}"


class Attachment(models.Model):
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="attachments")
    filename = models.CharField(max_length=255)
    content_type = models.CharField(max_length=120, help_text="Detected from the content, not the sender's claim.")
    size = models.PositiveBigIntegerField()
    content_id = models.CharField(max_length=255, blank=True, help_text="For cid: references in HTML.")
    file = models.FileField(upload_to=_attachment_path, max_length=200)

    def __str__(self) -> str:
        return self.filename


class Event(models.Model):
    """The realtime feed: the id is the sequence every pushed event carries.

    Clients that reconnect or see a gap fetch the rows after their last sequence, so a
    dropped push (the channel layer is at-most-once) is never a lost update.
    """

    type = models.CharField(max_length=40)
    inbox = models.ForeignKey(Inbox, on_delete=models.CASCADE, related_name="+")
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, null=True, related_name="+")
    message = models.ForeignKey(Message, on_delete=models.CASCADE, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["inbox", "id"], name="event_inbox_seq")]
