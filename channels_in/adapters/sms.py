"""SMS replies through Twilio's REST API (the `twilio` package), with a status callback each."""
from __future__ import annotations

import requests
from django.conf import settings
from django.urls import reverse
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.rest import Client

from channels_in import sms
from channels_in.adapters.base import AdapterError, SendReceipt
from channels_in.models import SmsChannel
from conversations.models import Channel, Message
from conversations.phones import e164
from conversations.selectors import sms_opt_out, sms_recipient
from conversations.services import sms_opt_out_reason


def status_callback_url(channel: SmsChannel, message: Message) -> str:
    """Where Twilio reports this message's delivery: our id rides along, as Twilio's SID is
    unknown until create() answers (and is lost if the worker dies before it can save it)."""
    path = reverse("twilio_sms_status", kwargs={"channel_uuid": channel.uuid})
    return f"{settings.SITE_URL}{path}?m={message.pk}"


class SmsAdapter:
    kind = Channel.SMS

    def send(self, message: Message) -> SendReceipt:
        """Send one reply. Precondition: claimed as `sending` (outbound_deliver)."""
        conversation = message.conversation
        channel = SmsChannel.objects.filter(inbox_id=conversation.inbox_id).first()
        if channel is None:
            raise AdapterError("This inbox has no SMS number to send from.", permanent=True)
        raw_recipient = sms_recipient(conversation)
        if not raw_recipient:
            raise AdapterError("The contact has no phone number.", permanent=True)
        recipient = e164(raw_recipient)
        if recipient is None:
            raise AdapterError(f"{raw_recipient} is not a phone number SMS can reach.", permanent=True)
        # Checked again here, not only when the reply was written: a STOP may have arrived
        # while the reply waited in the outbox.
        opted_out = sms_opt_out(recipient)
        if opted_out is not None:
            raise AdapterError(sms_opt_out_reason(opted_out), permanent=True)
        sender = {"messaging_service_sid": channel.messaging_service_sid} if channel.messaging_service_sid else {"from_": channel.phone_number}
        client = Client(channel.account_sid, channel.auth_token, http_client=sms.DeskTwilioHttpClient())
        try:
            sent = client.messages.create(to=recipient, body=message.text, status_callback=status_callback_url(channel, message), **sender)
        except (TwilioRestException, TwilioServiceException) as err:
            raise self._refusal(err, recipient, message) from err
        except requests.RequestException as err:
            # Connection refused, timeouts: Twilio may or may not have it; retried (at least once).
            raise AdapterError(f"Could not reach Twilio: {type(err).__name__}: {err}", permanent=False) from err
        return SendReceipt(provider_message_id=sent.sid, from_address=sent.from_ or channel.phone_number, to_address=recipient)

    def _refusal(self, err: TwilioRestException | TwilioServiceException, recipient: str, message: Message) -> AdapterError:
        status = int(err.status or 0)
        code = err.code
        detail = err.msg if isinstance(err, TwilioRestException) else (err.detail or err.title)
        if code == sms.OPTED_OUT_ERROR:
            # The customer texted STOP to Twilio without our seeing it (or before this desk):
            # record it, so no reply is even queued for this number again.
            sms.sms_consent_record(phone=recipient, keyword=str(sms.OPTED_OUT_ERROR), conversation=message.conversation)
            return AdapterError(sms.twilio_error_reason(code, detail) + " Nothing is sent until the customer texts START.", permanent=True)
        if status == 429 or status >= 500:
            return AdapterError(f"Twilio is unavailable (HTTP {status}): {detail}", permanent=False)
        return AdapterError(sms.twilio_error_reason(code, str(detail)), permanent=True)
