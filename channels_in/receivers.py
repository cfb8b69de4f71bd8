"""anymail's signals in: store inbound mail durably, apply tracking events forward only."""
from __future__ import annotations

import logging

from anymail.signals import AnymailInboundEvent, AnymailTrackingEvent, EventType, inbound, tracking
from django.dispatch import receiver

from channels_in.services import inbound_event_record
from channels_in.tracking import tracking_event_apply

logger = logging.getLogger(__name__)

# anymail's tracking vocabulary -> our delivery status (None: informational only).
TRACKING_STATUS = {
    EventType.SENT: "sent",
    EventType.QUEUED: "sent",
    EventType.DEFERRED: None,
    EventType.DELIVERED: "delivered",
    EventType.OPENED: "delivered",
    EventType.CLICKED: "delivered",
    EventType.BOUNCED: "failed",
    EventType.REJECTED: "failed",
    EventType.FAILED: "failed",
    EventType.COMPLAINED: None,
}


@receiver(inbound, dispatch_uid="helpdesk.inbound_email")
def inbound_email_received(sender: object, event: AnymailInboundEvent, esp_name: str, **kwargs: object) -> None:
    """Runs inside the webhook request: one short insert, nothing slow (providers time out)."""
    message = event.message
    meta = {
        "esp": esp_name,
        "envelope_sender": message.envelope_sender or "",
        "stripped_text": message.stripped_text or "",
        "spam_score": message.spam_score,
        "timestamp": event.timestamp.isoformat() if event.timestamp else None,
    }
    event_id = event.event_id or (str(message.get("Message-ID", "")).strip() or None)
    inbound_event_record(
        provider=esp_name.lower().replace(" ", "_"),
        event_id=event_id,
        raw=message.as_bytes(),
        recipient=message.envelope_recipient or "",
        meta=meta,
    )


@receiver(tracking, dispatch_uid="helpdesk.tracking_email")
def email_tracking_received(sender: object, event: AnymailTrackingEvent, esp_name: str, **kwargs: object) -> None:
    status = TRACKING_STATUS.get(event.event_type)
    if status is None:
        return
    reason = " ".join(filter(None, [event.reject_reason or "", event.mta_response or "", event.description or ""])).strip()
    tracking_event_apply(
        provider_message_id=event.message_id or "",
        desk_message_id=(event.metadata or {}).get("message_id"),
        status=status,
        reason=reason or event.event_type,
    )
