"""Delivery receipts from any provider, applied to the timeline forward only."""
from __future__ import annotations

from conversations.models import Channel, Message
from conversations.services import delivery_status_record


def tracking_event_apply(*, provider_message_id: str, desk_message_id: str | None, status: str, reason: str) -> bool:
    """Unknown ids are ignored (stale or someone else's mail); the provider still gets 200."""
    message = None
    if desk_message_id and str(desk_message_id).isdigit():
        message = Message.objects.select_related("conversation").filter(pk=int(desk_message_id), kind=Message.Kind.OUTBOUND).first()
    if message is None and provider_message_id:
        # Only replies: an inbound message's external_id is the customer's Message-ID, and a
        # receipt must never put a delivery status on the customer's own mail.
        message = (
            Message.objects.select_related("conversation")
            .filter(channel=Channel.EMAIL, kind=Message.Kind.OUTBOUND, external_id=provider_message_id).first()
        )
    if message is None:
        return False
    return delivery_status_record(message=message, status=status, reason=reason if status == Message.DeliveryStatus.FAILED else "")
