"""SMS through Twilio: inbound messages into the timeline, consent keywords, delivery receipts.

The webhook (channels_in/webhooks/twilio.py) only verifies and stores the raw post; the
inbound task runs `sms_event_parse` (outside the claim transaction: it may fetch MMS media
over the network) and then `sms_to_message` (inside it). Delivery receipts from Twilio's
status callbacks go through `sms_status_apply`. Consent (STOP / START) is kept per customer
number on the phone identity, by `sms_consent_record`.
"""
from __future__ import annotations

import dataclasses
import logging
import mimetypes
from datetime import datetime
from urllib.parse import parse_qs

import requests
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from twilio.http.http_client import TwilioHttpClient

from channels_in.models import InboundEvent, SmsChannel
from channels_in.services import InboundRejected
from conversations import realtime
from conversations.models import Channel, Contact, ContactIdentity, Conversation, Inbox, Message
from conversations.phones import e164
from conversations.services import (
    IncomingAttachment,
    IncomingMessage,
    contact_create,
    delivery_status_record,
    system_event_create,
)
from conversations.threading import ThreadMatch
from tickets.csat import csat_answer_record, csat_sms_answer_parse, csat_sms_pending
from tickets.models import CsatSurvey, Ticket
from tickets.services import inbound_message_record

logger = logging.getLogger(__name__)

TWILIO_API_URL = "https://api.twilio.com"

# RELIABILITY.md §2: Twilio's default keywords. The whole body must be the one word.
OPT_OUT_KEYWORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
OPT_IN_KEYWORDS = frozenset({"START", "YES", "UNSTOP"})
HELP_KEYWORDS = frozenset({"HELP", "INFO"})
# Twilio refuses to send to a number that texted STOP with this error code.
OPTED_OUT_ERROR = 21610

# Twilio error codes an agent meets on failed SMS, in words they can act on.
TWILIO_ERRORS = {
    21211: "the 'To' number is not a valid phone number",
    21408: "sending to this region is not enabled on the Twilio account",
    21610: "the recipient has opted out of SMS from this number (STOP)",
    21612: "Twilio cannot route a message from this number to that one",
    21614: "the 'To' number is not a mobile number",
    30001: "Twilio's queue overflowed; try again later",
    30002: "the Twilio account is suspended",
    30003: "the handset is unreachable (switched off or out of coverage)",
    30004: "the message was blocked (the recipient or their carrier blocks it)",
    30005: "unknown number: it does not exist or is no longer in service",
    30006: "the number is a landline or its carrier cannot receive SMS",
    30007: "the carrier filtered the message (suspected spam)",
    30008: "unknown error from the carrier",
    30034: "the sending number is not registered for US A2P 10DLC",
}


def twilio_error_reason(code: int | str | None, detail: str = "") -> str:
    """'Twilio error 30003: the handset is unreachable …' (Twilio's own text when we have no better)."""
    try:
        number = int(code) if code not in (None, "") else None
    except (TypeError, ValueError):
        number = None
    if number is None:
        return f"Twilio reported a failure{f': {detail}' if detail else ''}."
    return f"Twilio error {number}: {TWILIO_ERRORS.get(number) or detail or 'see twilio.com/docs/errors'}."


# Twilio's REST API at a configurable address --------------------------------------------

def twilio_api_url(url: str) -> str:
    """The URL with api.twilio.com replaced by settings.TWILIO_API_BASE_URL (a local fake)."""
    base = settings.TWILIO_API_BASE_URL.rstrip("/")
    if base != TWILIO_API_URL and url.startswith(TWILIO_API_URL + "/"):
        return base + url[len(TWILIO_API_URL):]
    return url


class DeskTwilioHttpClient(TwilioHttpClient):
    """The twilio package's HTTP client, pointed at TWILIO_API_BASE_URL, with our timeout.

    `request` is the one place every API call passes through with its full URL, so the
    rewrite there covers every resource the SDK builds.
    """

    def __init__(self) -> None:
        super().__init__(pool_connections=False, timeout=settings.TWILIO_TIMEOUT_SECONDS)

    def request(self, method: str, url: str, *args: object, **kwargs: object):
        return super().request(method, twilio_api_url(url), *args, **kwargs)


# Phone numbers -------------------------------------------------------------------------

# Consent -------------------------------------------------------------------------------

class Consent:
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"


def keyword_consent(body: str, opt_out_type: str = "") -> tuple[str, str] | None:
    """(Consent kind, keyword) when the whole message is a consent keyword, else None.

    With Twilio's Advanced Opt-Out a number may have custom keywords; Twilio then names
    the kind in `OptOutType` (STOP, START, HELP), which wins.
    """
    word = body.strip().upper()
    by_type = {"STOP": Consent.OPT_OUT, "START": Consent.OPT_IN, "HELP": Consent.HELP}.get(opt_out_type.strip().upper())
    if by_type:
        return by_type, (word or opt_out_type.upper())[:32]
    if word in OPT_OUT_KEYWORDS:
        return Consent.OPT_OUT, word
    if word in OPT_IN_KEYWORDS:
        return Consent.OPT_IN, word
    if word in HELP_KEYWORDS:
        return Consent.HELP, word
    return None


def sms_consent_record(
    *,
    phone: str,
    keyword: str,
    at: datetime | None = None,
    conversation: Conversation | None = None,
    opt_out: bool | None = None,
) -> ContactIdentity | None:
    """Record a number's SMS consent change and say so in the conversation's timeline.

    `keyword` is the customer's keyword (STOP, START, …) or Twilio's error code ("21610",
    which means opted out). `opt_out` overrides what the keyword implies (custom keywords).
    `at` orders keywords: one older than the last recorded is ignored, so a STOP processed
    after a later START (a retried event) does not win. Only a change of state gets a
    timeline line. Returns the identity when the state changed, else None.
    A HELP keyword changes no state: only a timeline line.
    """
    at = at or timezone.now()
    keyword = keyword.strip().upper()[:32]
    if opt_out is None:
        if keyword in OPT_OUT_KEYWORDS or keyword == str(OPTED_OUT_ERROR):
            opt_out = True
        elif keyword in OPT_IN_KEYWORDS:
            opt_out = False
    if opt_out is None:
        if conversation is not None:
            _consent_line(conversation, f"{phone} texted {keyword}: Twilio answers help keywords with the number's help text.")
        return None
    with transaction.atomic():
        identity = _phone_identity_locked(phone, conversation)
        if identity is None:
            return None
        if identity.sms_consent_changed_at is not None and at < identity.sms_consent_changed_at:
            return None
        changed = (identity.sms_opted_out_at is not None) != opt_out
        if changed:
            identity.sms_opted_out_at = at if opt_out else None
        # Recorded even when the state stays: a later-processed, earlier keyword must see it.
        identity.sms_consent_keyword = keyword
        identity.sms_consent_changed_at = at
        identity.save(update_fields=["sms_opted_out_at", "sms_consent_keyword", "sms_consent_changed_at"])
        if changed and conversation is not None:
            _consent_line(conversation, _consent_text(phone, keyword, opt_out))
    return identity if changed else None


def _consent_text(phone: str, keyword: str, opt_out: bool) -> str:
    if not opt_out:
        return f"{phone} opted back in to SMS ({keyword}). Replies by SMS are sent again."
    if keyword == str(OPTED_OUT_ERROR):
        why = f"Twilio refused to send (error {OPTED_OUT_ERROR}: the number had texted STOP)"
    else:
        why = keyword
    return f"{phone} opted out of SMS ({why}). Replies by SMS are refused until they text START."


def _consent_line(conversation: Conversation, text: str) -> None:
    line = system_event_create(conversation=conversation, text=text)
    realtime.publish(type="message.created", inbox_id=conversation.inbox_id, conversation_id=conversation.pk, message_id=line.pk)


def _phone_identity_locked(phone: str, conversation: Conversation | None) -> ContactIdentity | None:
    """The number's identity, row-locked; created for the conversation's contact when missing
    (a number typed into the contact record, never texted from)."""
    identity = ContactIdentity.objects.select_for_update().filter(kind=ContactIdentity.Kind.PHONE, address=phone).first()
    if identity is not None or conversation is None:
        return identity
    try:
        with transaction.atomic():
            return ContactIdentity.objects.create(contact_id=conversation.contact_id, kind=ContactIdentity.Kind.PHONE, address=phone)
    except IntegrityError:
        return ContactIdentity.objects.select_for_update().get(kind=ContactIdentity.Kind.PHONE, address=phone)


# Inbound -------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ParsedSms:
    channel_id: int
    message_sid: str
    from_number: str
    to_number: str
    body: str
    opt_out_type: str
    received_at: datetime
    attachments: tuple[IncomingAttachment, ...] = ()
    notices: tuple[str, ...] = ()


class MediaUnavailable(Exception):
    """A transient failure to fetch MMS media: retrying the event may succeed."""


def sms_event_parse(event: InboundEvent) -> ParsedSms:
    """Read a stored Twilio webhook and fetch its MMS media. Runs outside any transaction.

    Raises InboundRejected for what retries cannot fix, MediaUnavailable (retried) when a
    media file could not be fetched for a reason that may pass, except on the last allowed
    attempt: then the text is kept with a notice, rather than losing the whole message.
    """
    try:
        params = {k: v[0] for k, v in parse_qs(bytes(event.raw).decode("utf-8"), keep_blank_values=True).items()}
    except UnicodeDecodeError as err:
        raise InboundRejected(f"Unreadable Twilio post: {err}") from err
    channel = SmsChannel.objects.filter(pk=(event.meta or {}).get("channel")).first()
    if channel is None:
        raise InboundRejected("The SMS channel this message came to no longer exists.")
    sid = params.get("MessageSid") or params.get("SmsMessageSid") or ""
    if not sid:
        raise InboundRejected("The post has no MessageSid.")
    from_number, to_number = e164(params.get("From", "")), e164(params.get("To", "") or channel.phone_number)
    if from_number is None:
        raise InboundRejected(f"The sender {params.get('From', '')!r} is not a phone number.")
    if to_number is None:
        raise InboundRejected(f"The recipient {params.get('To', '')!r} is not a phone number.")
    last_attempt = event.attempts >= settings.HELPDESK["INBOUND_MAX_ATTEMPTS"]
    attachments, notices = _media_fetch(channel, params, last_attempt=last_attempt)
    return ParsedSms(
        channel_id=channel.pk,
        message_sid=sid,
        from_number=from_number,
        to_number=to_number,
        body=params.get("Body", ""),
        opt_out_type=params.get("OptOutType", ""),
        received_at=event.received_at,
        attachments=tuple(attachments),
        notices=tuple(notices),
    )


def _media_fetch(channel: SmsChannel, params: dict[str, str], *, last_attempt: bool) -> tuple[list[IncomingAttachment], list[str]]:
    try:
        count = max(0, int(params.get("NumMedia") or 0))
    except ValueError:
        count = 0
    attachments: list[IncomingAttachment] = []
    notices: list[str] = []
    for n in range(count):
        url, content_type = params.get(f"MediaUrl{n}", ""), params.get(f"MediaContentType{n}", "")
        name = f"media-{n + 1}{mimetypes.guess_extension(content_type.split(';')[0].strip()) or ''}"
        try:
            attachments.append(IncomingAttachment(filename=name, content=_media_download(channel, url)))
        except MediaUnavailable as err:
            if not last_attempt:
                raise
            notices.append(f"MMS media {name} could not be fetched from Twilio ({err}); the text was kept without it.")
        except _MediaRefused as err:
            notices.append(f"MMS media {name} could not be fetched from Twilio ({err}).")
    return attachments, notices


class _MediaRefused(Exception):
    """Twilio will not give this media file (4xx): retrying does not help."""


def _media_download(channel: SmsChannel, url: str) -> bytes:
    url = twilio_api_url(url)
    # Our credentials go only to Twilio (or the configured stand-in), never to a host a
    # payload names; Twilio's own redirect to its CDN drops them (requests does).
    allowed = (TWILIO_API_URL + "/", settings.TWILIO_API_BASE_URL.rstrip("/") + "/")
    if not url.startswith(allowed):
        raise _MediaRefused(f"not a Twilio media URL: {url[:200]}")
    limit = settings.ATTACHMENT_MAX_BYTES
    try:
        with requests.get(url, auth=(channel.account_sid, channel.auth_token), timeout=settings.TWILIO_TIMEOUT_SECONDS, stream=True) as response:
            if response.status_code == 429 or response.status_code >= 500:
                raise MediaUnavailable(f"HTTP {response.status_code}")
            if response.status_code >= 400:
                raise _MediaRefused(f"HTTP {response.status_code}")
            content = b""
            # One byte over the limit is enough for attachments_store to refuse it with a notice.
            for chunk in response.iter_content(64 * 1024):
                content += chunk
                if len(content) > limit:
                    break
            return content
    except requests.RequestException as err:
        raise MediaUnavailable(f"{type(err).__name__}") from err


def sms_to_message(parsed: ParsedSms) -> Message:
    """The SMS as a timeline message, plus its consent change. Call inside transaction.atomic()."""
    duplicate = Message.objects.filter(channel=Channel.SMS, external_id=parsed.message_sid).first()
    if duplicate is not None:
        return duplicate  # the same MessageSid stored under another event: keep the first
    channel = SmsChannel.objects.select_related("inbox").filter(pk=parsed.channel_id).first()
    if channel is None:
        raise InboundRejected("The SMS channel this message came to no longer exists.")
    inbox = channel.inbox
    contact = _contact_for_number(inbox, parsed.from_number)
    thread = _sms_thread(inbox, contact)
    incoming = IncomingMessage(
        channel=Channel.SMS,
        from_address=parsed.from_number,
        to_address=parsed.to_number,
        text=parsed.body,
        external_id=parsed.message_sid,
        attachments=parsed.attachments,
    )
    answer = _csat_answer(thread, parsed.body)
    if answer is None:
        message = inbound_message_record(inbox=inbox, contact=contact, incoming=incoming, thread=thread)
    else:
        # The answer to our satisfaction question: kept in the timeline like any text, but
        # it does not reopen the solved conversation.
        survey, rating, comment = answer
        message = inbound_message_record(inbox=inbox, contact=contact, incoming=incoming, thread=thread, reopen=False)
        csat_answer_record(survey=survey, rating=rating, comment=comment)
    if parsed.notices:
        message.notices = [*message.notices, *parsed.notices]
        Message.objects.filter(pk=message.pk).update(notices=message.notices)
    consent = keyword_consent(parsed.body, parsed.opt_out_type)
    if consent is not None:
        kind, keyword = consent
        sms_consent_record(
            phone=parsed.from_number, keyword=keyword, at=parsed.received_at, conversation=message.conversation,
            opt_out={Consent.OPT_OUT: True, Consent.OPT_IN: False}.get(kind),
        )
    return message


def _csat_answer(thread: ThreadMatch, body: str) -> tuple[CsatSurvey, int, str] | None:
    """(survey, rating, comment) when this text answers the conversation's SMS rating question."""
    if thread.conversation is None:
        return None
    parsed = csat_sms_answer_parse(body)
    if parsed is None:
        return None
    survey = csat_sms_pending(conversation_id=thread.conversation.pk)
    return (survey, *parsed) if survey is not None else None


def _contact_for_number(inbox: Inbox, number: str) -> Contact:
    """The number's contact; a number we answered by SMS from this inbox (a chat answered by
    SMS) joins the contact we wrote to, so the customer's answer stays in that conversation."""
    identity = ContactIdentity.objects.select_related("contact").filter(kind=ContactIdentity.Kind.PHONE, address=number).first()
    if identity is not None:
        return identity.contact
    answered = (
        Message.objects.filter(conversation__inbox=inbox, kind=Message.Kind.OUTBOUND, channel=Channel.SMS, to_address=number)
        .select_related("conversation__contact").order_by("-id").first()
    )
    if answered is not None:
        contact = answered.conversation.contact
        try:
            with transaction.atomic():
                ContactIdentity.objects.create(contact=contact, kind=ContactIdentity.Kind.PHONE, address=number)
            return contact
        except IntegrityError:
            pass  # another worker attached the number meanwhile: use theirs
    return contact_create(kind=ContactIdentity.Kind.PHONE, address=number)


def _sms_thread(inbox: Inbox, contact: Contact) -> ThreadMatch:
    """SMS has no threading headers: the contact's latest live conversation in this inbox.

    A closed ticket is done for good, so a new text opens a new conversation; a solved one
    reopens (inbound_message_record). A merged conversation has no messages left.
    """
    latest = (
        Conversation.objects.filter(inbox=inbox, contact=contact, merged_into__isnull=True)
        .order_by(F("last_message_at").desc(nulls_last=True), "-id").first()
    )
    if latest is None or Ticket.objects.filter(pk=latest.pk, status=Ticket.Status.CLOSED).exists():
        return ThreadMatch(None, Message.ThreadRule.NEW)
    return ThreadMatch(latest, Message.ThreadRule.SENDER)


# Delivery receipts -----------------------------------------------------------------------

# Twilio's MessageStatus -> ours. queued/accepted/scheduled say nothing we do not know, and
# partially_delivered (some segments) is not a final answer either.
STATUS_MAP = {
    "sending": Message.DeliveryStatus.SENDING,
    "sent": Message.DeliveryStatus.SENT,
    "delivered": Message.DeliveryStatus.DELIVERED,
    "read": Message.DeliveryStatus.READ,
    "undelivered": Message.DeliveryStatus.FAILED,
    "failed": Message.DeliveryStatus.FAILED,
    "canceled": Message.DeliveryStatus.FAILED,
}


def sms_status_message(*, channel: SmsChannel, message_id: str | None, message_sid: str) -> Message | None:
    """Our outbound SMS a status callback is about, or None (unknown, or another inbox's)."""
    qs = Message.objects.select_related("conversation").filter(
        kind=Message.Kind.OUTBOUND, channel=Channel.SMS, conversation__inbox_id=channel.inbox_id
    )
    if message_id:
        if not message_id.isdigit():
            return None
        message = qs.filter(pk=int(message_id)).first()
        # A callback for an earlier send of ours (another SID) must not touch this one.
        if message is not None and message.external_id and message_sid and message.external_id != message_sid:
            return None
        return message
    if not message_sid:
        return None
    return qs.filter(external_id=message_sid).first()


def sms_status_apply(*, message: Message, params: dict[str, str]) -> bool:
    """Apply one Twilio status callback, forward only. Returns True when the status changed."""
    sid = params.get("MessageSid") or params.get("SmsSid") or ""
    if not message.external_id and sid:
        # The callback overtook our own "sent" write (which only moves a message still in
        # "sending"): record which SID this is, and the numbers, so later callbacks match.
        Message.objects.filter(pk=message.pk, external_id__isnull=True).update(
            external_id=sid,
            from_address=message.from_address or (e164(params.get("From", "")) or "")[:320],
            to_address=message.to_address or (e164(params.get("To", "")) or "")[:320],
        )
    twilio_status = (params.get("MessageStatus") or params.get("SmsStatus") or "").lower()
    status = STATUS_MAP.get(twilio_status)
    if status is None:
        return False
    reason = ""
    if status == Message.DeliveryStatus.FAILED:
        code = params.get("ErrorCode", "")
        reason = twilio_error_reason(code, f"the message was {twilio_status}") if code else f"Twilio reported the message as {twilio_status}."
        if code == str(OPTED_OUT_ERROR):
            phone = e164(params.get("To", "")) or message.to_address
            if phone:
                sms_consent_record(phone=phone, keyword=str(OPTED_OUT_ERROR), conversation=message.conversation)
    return delivery_status_record(message=message, status=status, reason=reason)
