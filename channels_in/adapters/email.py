"""Email through anymail: RFC 822 in, anymail backends out."""
from __future__ import annotations

import dataclasses
import functools
import json
import re
import smtplib
from base64 import b64decode
from email.parser import BytesParser
from email.policy import EmailPolicy
from email.policy import default as default_policy
from email.utils import formataddr, getaddresses

from anymail.exceptions import AnymailAPIError, AnymailRecipientsRefused
from anymail.inbound import AnymailInboundMessage
from anymail.utils import angle_wrap
from django.core.mail import EmailMultiAlternatives

from channels_in.adapters.base import AdapterError, SendReceipt
from channels_in.models import EmailChannel
from conversations.html import fold_quoted_text, sanitize_email_html
from conversations.models import Channel, Message
from conversations.services import IncomingAttachment, IncomingMessage
from conversations.threading import parse_message_ids, reply_token

# Provider HTTP statuses worth retrying; every other 4xx is the message's own fault.
_TRANSIENT_STATUSES = {408, 409, 425, 429}
_MAX_REFERENCES = 20


@dataclasses.dataclass(frozen=True)
class ParsedEmail:
    incoming: IncomingMessage
    recipients: list[str]
    from_name: str


@functools.lru_cache(maxsize=4096)
def _header(name: str, value: str) -> object:
    return default_policy.header_fetch_parse(name, value)


class _ParsedHeadersPolicy(EmailPolicy):
    """email.policy.default, but a header value is parsed once, not at every read.

    The modern email API parses a header each time it is read, and walking a message for its
    text, HTML and attachments reads each part's Content-Type and Content-Disposition many
    times over: without this, header parsing was most of an inbound email's processing
    time. Parsed headers are immutable, so sharing them between messages is safe.
    """

    def header_fetch_parse(self, name: str, value: object) -> object:
        if isinstance(value, str) and not hasattr(value, "name"):
            return _header(name, value)
        return super().header_fetch_parse(name, value)


_PARSE_POLICY = _ParsedHeadersPolicy()


def parse_inbound(raw: bytes, *, envelope_recipient: str = "", stripped_text: str = "") -> ParsedEmail:
    """Normalise one RFC 822 message. Every header may be forged; nothing here grants access."""
    message = BytesParser(AnymailInboundMessage, policy=_PARSE_POLICY).parsebytes(raw)
    return _parsed_message(message, envelope_recipient=envelope_recipient, stripped_text=stripped_text)


def _parsed_message(message: AnymailInboundMessage, *, envelope_recipient: str, stripped_text: str) -> ParsedEmail:
    sender = message.from_email
    attachments = tuple(
        IncomingAttachment(
            filename=part.get_filename() or "attachment",
            content=part.get_content_bytes() or b"",
            content_id=str(part.get("Content-ID", "") or ""),
        )
        for part in [*message.attachments, *message.inlines]
    )
    recipients = [envelope_recipient] if envelope_recipient else []
    for header in ("Delivered-To", "X-Original-To", "To", "Cc"):
        recipients += [addr for _, addr in getaddresses(message.get_all(header, [])) if addr]
    return _parsed_email(
        from_address=sender.addr_spec if sender else "",
        from_name=sender.display_name if sender else "",
        to_address=envelope_recipient or ", ".join(a.addr_spec for a in message.to),
        subject=message.subject or "",
        text=message.text or "",
        html=message.html or "",
        stripped_text=stripped_text,
        message_id=str(message.get("Message-ID", "")),
        in_reply_to=str(message.get("In-Reply-To", "") or ""),
        references=str(message.get("References", "") or ""),
        attachments=attachments,
        recipients=recipients,
    )


def _parsed_email(*, from_address: str, from_name: str, to_address: str, subject: str, text: str, html: str,
                  stripped_text: str, message_id: str, in_reply_to: str, references: str,
                  attachments: tuple[IncomingAttachment, ...], recipients: list[str]) -> ParsedEmail:
    rfc_ids = parse_message_ids(message_id)
    rfc_message_id = rfc_ids[0] if rfc_ids else ""
    incoming = IncomingMessage(
        channel=Channel.EMAIL,
        from_address=from_address.strip().lower(),
        from_name=from_name,
        to_address=to_address,
        subject=subject.strip(),
        text=text,
        text_display=(stripped_text or fold_quoted_text(text)) if text else "",
        html=sanitize_email_html(html) if html else "",
        external_id=rfc_message_id or None,
        rfc_message_id=rfc_message_id,
        in_reply_to=in_reply_to,
        references=references,
        attachments=attachments,
    )
    return ParsedEmail(incoming=incoming, recipients=[r.strip().lower() for r in recipients], from_name=from_name)


# Postmark's inbound JSON, stored as received ------------------------------------------------

POSTMARK_JSON = "postmark-json"  # InboundEvent.meta["format"] of a Postmark post kept as received


def postmark_inbound_check(body: bytes) -> dict:
    """The checks a Postmark inbound post must pass before it is stored; raises ValueError.

    Cheap on purpose: the webhook answers while Postmark waits, so building the email (MIME
    parts and their headers, milliseconds of CPU) is left to the worker.
    """
    payload = json.loads(body)
    if not isinstance(payload, dict):
        raise ValueError(f"expected a JSON object, got {type(payload).__name__}")
    record_type = payload.get("RecordType", "Inbound")
    if record_type != "Inbound":
        raise ValueError(f"a {record_type!r} event: Postmark's {record_type} webhook points at the inbound URL")
    sender = payload.get("FromFull")
    if not (isinstance(sender, dict) and isinstance(sender.get("Email"), str) and sender["Email"].strip()):
        raise ValueError("no sender (FromFull.Email)")
    recipients = [_postmark_email(entry) for key in ("ToFull", "CcFull", "BccFull") for entry in _postmark_list(payload, key)]
    if not (any(recipients) or _postmark_str(payload, "OriginalRecipient")):
        raise ValueError("no recipient (ToFull, CcFull, BccFull or OriginalRecipient)")
    for key in ("Subject", "TextBody", "HtmlBody", "StrippedTextReply", "RawEmail", "MessageID"):
        _postmark_str(payload, key)
    for header in _postmark_list(payload, "Headers"):
        if not (isinstance(header.get("Name"), str) and isinstance(header.get("Value"), str)):
            raise ValueError("a header without a string Name and Value")
    for attachment in _postmark_list(payload, "Attachments"):
        content = attachment.get("Content") or attachment.get("Data")
        if not isinstance(content, str):
            raise ValueError("an attachment without Content")
        if not all(isinstance(attachment.get(key), str | None) for key in ("Name", "ContentType", "ContentID")):
            raise ValueError("an attachment's Name, ContentType or ContentID is not a string")
        b64decode(content)  # binascii.Error is a ValueError
    return payload


def postmark_inbound_parse(body: bytes) -> ParsedEmail:
    """A stored Postmark inbound post, normalised like an RFC 822 message of the same mail.

    With RawEmail (Postmark's "include raw email" option) the original message is parsed.
    Otherwise the email is read from Postmark's fields directly; a post carrying an attached
    email (message/rfc822, whose parts anymail walks into) goes through anymail's own
    construction instead. Either way the result is what anymail's email gives, except that
    attachments keep Postmark's bytes exactly (serialising anymail's MIME message turned CR
    bytes in binary files into LF).
    """
    payload = json.loads(body)
    envelope_recipient = payload.get("OriginalRecipient") or ""
    stripped_text = payload.get("StrippedTextReply") or ""
    attachments = payload.get("Attachments") or []
    if "RawEmail" in payload or any(str(a.get("ContentType", "")).lower().startswith("message/") for a in attachments):
        from anymail.webhooks.postmark import PostmarkInboundWebhookView

        message = PostmarkInboundWebhookView().esp_to_anymail_event(payload).message
        return _parsed_message(message, envelope_recipient=envelope_recipient, stripped_text=stripped_text)
    _, headers = postmark_headers(payload)

    def header(name: str) -> str:
        return next((h["Value"] for h in headers if h["Name"].lower() == name.lower()), "")

    def all_headers(name: str) -> list[str]:
        return [h["Value"] for h in headers if h["Name"].lower() == name.lower()]

    sender = payload.get("FromFull") or {}
    to = [_postmark_email(entry) for entry in payload.get("ToFull") or []]
    cc = [_postmark_email(entry) for entry in payload.get("CcFull") or []]
    recipients = [envelope_recipient] if envelope_recipient else []
    for name in ("Delivered-To", "X-Original-To"):
        recipients += [addr for _, addr in getaddresses(all_headers(name)) if addr]
    recipients += [addr for addr in [*to, *cc] if addr]
    # anymail's order: parts with Content-Disposition attachment, then inline ones (any
    # ContentID, even an empty one, makes a part inline).
    parts = [_postmark_attachment(a) for a in attachments if a.get("ContentID") is None]
    parts += [_postmark_attachment(a) for a in attachments if a.get("ContentID") is not None]
    return _parsed_email(
        from_address=sender.get("Email") or "",
        from_name=sender.get("Name") or "",
        to_address=envelope_recipient or ", ".join(addr for addr in to if addr),
        subject=payload.get("Subject") or "",
        text=payload.get("TextBody") or "",
        html=payload.get("HtmlBody") or "",
        stripped_text=stripped_text,
        message_id=header("Message-ID"),
        in_reply_to=header("In-Reply-To"),
        references=header("References"),
        attachments=tuple(parts),
        recipients=recipients,
    )


def postmark_headers(payload: dict) -> tuple[str, list[dict]]:
    """(envelope sender, the message's headers): Postmark puts the envelope sender first in
    Headers, as a Return-Path that is not a header of the message."""
    headers = payload.get("Headers") or []
    if headers and headers[0]["Name"].lower() == "return-path":
        return headers[0]["Value"].strip("<>"), headers[1:]
    return "", headers


def _postmark_attachment(attachment: dict) -> IncomingAttachment:
    content_id = attachment.get("ContentID")
    return IncomingAttachment(
        filename=re.sub(r"[\r\n]+", " ", attachment.get("Name") or "") or "attachment",
        content=b64decode(attachment.get("Content") or attachment["Data"]),
        content_id="" if content_id is None else angle_wrap(content_id),
    )


def _postmark_email(entry: dict) -> str:
    email = entry.get("Email")
    return email if isinstance(email, str) else ""


def _postmark_list(payload: dict, key: str) -> list[dict]:
    value = payload.get(key) or []
    if not (isinstance(value, list) and all(isinstance(item, dict) for item in value)):
        raise ValueError(f"{key} is not a list of objects")
    return value


def _postmark_str(payload: dict, key: str) -> str:
    value = payload.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{key} is not a string")
    return value or ""


def split_plus_address(address: str) -> tuple[str, str]:
    """'support+c12.abcd@acme.test' -> ('support@acme.test', 'c12.abcd')."""
    local, _, domain = address.partition("@")
    base, _, tag = local.partition("+")
    return f"{base}@{domain}", tag


def email_channel_for_recipients(recipients: list[str]) -> tuple[EmailChannel | None, list[str]]:
    """The first of our addresses among the recipients, and every plus-token seen."""
    bases = [split_plus_address(r) for r in recipients]
    tokens = [tag for _, tag in bases if tag]
    channels = {c.address: c for c in EmailChannel.objects.select_related("inbox").filter(address__in=[b for b, _ in bases])}
    for base, _ in bases:
        if base in channels:
            return channels[base], tokens
    return None, tokens


def _provider_says(err: AnymailRecipientsRefused) -> str:
    """anymail drops the provider's reason from this error; the agent needs it to fix the address."""
    response = getattr(err, "response", None)
    if response is None:
        return ""
    try:
        body = response.json()
    except ValueError:
        return f" ({response.text[:500]})" if response.text else ""
    detail = (body.get("Message") or body.get("message")) if isinstance(body, dict) else None
    return f" ({str(detail)[:500]})" if detail else ""


class EmailAdapter:
    kind = Channel.EMAIL

    def send(self, message: Message) -> SendReceipt:
        """Send one reply through the configured backend. Precondition: claimed as `sending`."""
        email = self.build(message)
        try:
            email.send(fail_silently=False)
        except AnymailRecipientsRefused as err:
            raise AdapterError(f"Recipient refused: {err}{_provider_says(err)}", permanent=True) from err
        except AnymailAPIError as err:
            status = getattr(err, "status_code", None)
            permanent = status is not None and 400 <= status < 500 and status not in _TRANSIENT_STATUSES
            raise AdapterError(f"Provider error{f' {status}' if status else ''}: {err}", permanent=permanent) from err
        except smtplib.SMTPRecipientsRefused as err:
            raise AdapterError(f"Recipient refused: {err.recipients}", permanent=True) from err
        except (smtplib.SMTPException, OSError) as err:
            raise AdapterError(f"Mail server error: {err}", permanent=False) from err
        status = getattr(email, "anymail_status", None)
        if status is not None and status.status and status.status <= {"rejected", "invalid"}:
            raise AdapterError(f"Provider rejected the message ({', '.join(sorted(status.status))}).", permanent=True)
        provider_id = (status.message_id if status is not None else None) or message.rfc_message_id
        return SendReceipt(provider_message_id=str(provider_id), from_address=email.from_email, to_address=", ".join(email.to))

    def build(self, message: Message) -> EmailMultiAlternatives:
        conversation = message.conversation
        channel = EmailChannel.objects.get(inbox_id=conversation.inbox_id)
        parent = (
            conversation.messages.filter(kind=Message.Kind.INBOUND, channel=Channel.EMAIL)
            .exclude(rfc_message_id="").order_by("-created_at", "-id").first()
        )
        to_address = parent.from_address if parent else conversation.contact.email
        if not to_address:
            raise AdapterError("The contact has no email address.", permanent=True)
        headers = {"Message-ID": f"<{message.rfc_message_id}>"}
        if parent is not None:
            chain = parse_message_ids(parent.references) or parse_message_ids(parent.in_reply_to)
            chain = (chain + [parent.rfc_message_id])[-_MAX_REFERENCES:]
            headers["In-Reply-To"] = f"<{parent.rfc_message_id}>"
            headers["References"] = " ".join(f"<{i}>" for i in chain)
        subject = conversation.subject or "Your request"
        if not subject.lower().startswith("re:"):
            subject = f"Re: {subject}"
        if f"[#{conversation.pk}]" not in subject:
            subject = f"{subject} [#{conversation.pk}]"
        email = EmailMultiAlternatives(
            subject=subject,
            body=message.text,
            from_email=formataddr((channel.from_name or channel.inbox.name, channel.address)),
            to=[to_address],
            reply_to=[f"{channel.local_part}+{reply_token(conversation.pk)}@{channel.domain}"],
            headers=headers,
        )
        email.metadata = {"message_id": str(message.pk)}  # anymail echoes it in tracking events
        email.track_clicks = False
        return email
