"""Email through anymail: RFC 822 in, anymail backends out."""
from __future__ import annotations

import dataclasses
import functools
import smtplib
from email.parser import BytesParser
from email.policy import EmailPolicy
from email.policy import default as default_policy
from email.utils import formataddr, getaddresses

from anymail.exceptions import AnymailAPIError, AnymailRecipientsRefused
from anymail.inbound import AnymailInboundMessage
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
    sender = message.from_email
    from_address = (sender.addr_spec if sender else "").strip().lower()
    text = message.text or ""
    html = message.html or ""
    rfc_ids = parse_message_ids(str(message.get("Message-ID", "")))
    rfc_message_id = rfc_ids[0] if rfc_ids else ""
    attachments = tuple(
        IncomingAttachment(
            filename=part.get_filename() or "attachment",
            content=part.get_content_bytes() or b"",
            content_id=str(part.get("Content-ID", "") or ""),
        )
        for part in [*message.attachments, *message.inlines]
    )
    incoming = IncomingMessage(
        channel=Channel.EMAIL,
        from_address=from_address,
        from_name=sender.display_name if sender else "",
        to_address=envelope_recipient or ", ".join(a.addr_spec for a in message.to),
        subject=(message.subject or "").strip(),
        text=text,
        text_display=(stripped_text or fold_quoted_text(text)) if text else "",
        html=sanitize_email_html(html) if html else "",
        external_id=rfc_message_id or None,
        rfc_message_id=rfc_message_id,
        in_reply_to=str(message.get("In-Reply-To", "") or ""),
        references=str(message.get("References", "") or ""),
        attachments=attachments,
    )
    recipients = [envelope_recipient] if envelope_recipient else []
    for header in ("Delivered-To", "X-Original-To", "To", "Cc"):
        recipients += [addr for _, addr in getaddresses(message.get_all(header, [])) if addr]
    return ParsedEmail(incoming=incoming, recipients=[r.strip().lower() for r in recipients], from_name=incoming.from_name)


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
