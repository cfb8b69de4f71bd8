"""Web chat delivery: push the reply to the visitor's widget; email it when nobody is there."""
from __future__ import annotations

import logging

from channels_in.adapters.base import AdapterError, SendReceipt
from channels_in.models import EmailChannel, WebChatChannel
from channels_in.widget import message_json, visitors_online
from conversations import realtime
from conversations.models import Channel, Message

logger = logging.getLogger(__name__)


class WebchatAdapter:
    kind = Channel.WEBCHAT

    def send(self, message: Message) -> SendReceipt:
        """Precondition: claimed as `sending`. The push is at-most-once; the widget catches up
        from the database on reconnect, so the message is delivered either way."""
        conversation = message.conversation
        channel = WebChatChannel.objects.filter(inbox_id=conversation.inbox_id).first()
        if channel is None:
            raise AdapterError("This inbox has no web chat widget to deliver to.", permanent=True)
        fresh = Message.objects.select_related("author_user").prefetch_related("attachments").get(pk=message.pk)
        payload = message_json(fresh, channel=channel) | {"status": Message.DeliveryStatus.SENT}
        realtime.push_after_commit(realtime.customer_group(conversation.pk), {"type": "widget.message", "message": payload})
        receipt = SendReceipt(provider_message_id=f"webchat-{message.pk}")
        if visitors_online(conversation=conversation):
            return receipt
        email_address = conversation.contact.email
        if not email_address or not EmailChannel.objects.filter(inbox_id=conversation.inbox_id).exists():
            return receipt
        # Offline continuity: the same reply by email, with our Message-ID and the signed
        # reply address, so the customer's emailed answer threads into this conversation.
        from channels_in.adapters.email import EmailAdapter

        try:
            emailed = EmailAdapter().send(message)
        except AdapterError as err:
            if not err.permanent:
                raise  # retried as a whole; the repeated push is harmless (the widget dedupes by id)
            _notice(message, f"The visitor was offline and the email to {email_address} failed: {err}")
            return receipt
        _notice(message, f"The visitor was offline: sent by email to {emailed.to_address}.")
        return SendReceipt(provider_message_id=emailed.provider_message_id or receipt.provider_message_id,
                           from_address=emailed.from_address, to_address=emailed.to_address)


def _notice(message: Message, text: str) -> None:
    notices = list(Message.objects.only("notices").get(pk=message.pk).notices or [])
    if text not in notices:
        Message.objects.filter(pk=message.pk).update(notices=[*notices, text])
        message.notices = [*notices, text]
