"""The web chat widget: visitor tokens, identity proofs, and what a visitor may read and write.

Every entry point (HTTP fallback, WebSocket, signed file URLs) goes through these functions,
so the rules hold everywhere: a visitor reaches only its own conversation, and a site user id
is claimed only with a valid proof signed by the inbox's identity secret.
"""
from __future__ import annotations

import dataclasses
import hashlib
import hmac
import logging
import uuid
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import jwt
from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from channels_in.models import Visitor, WebChatChannel
from conversations import realtime
from conversations.models import Attachment, Channel, Contact, ContactIdentity, Conversation, Message
from conversations.selectors import contact_survivor, conversation_survivor
from conversations.services import (
    IncomingAttachment,
    IncomingMessage,
    contact_get_or_create,
    delivery_status_record,
)
from conversations.threading import ThreadMatch
from tickets import calendars
from tickets.services import inbound_message_record

logger = logging.getLogger(__name__)

SUBPROTOCOL = "desk-widget.v1"
_TOKEN_SALT = "helpdesk.widget.visitor"
_FILE_SALT = "helpdesk.widget.file"
# Signed file URLs are fetched right after the message list arrives (an <img> or a click);
# the widget refetches the list on every reconnect, which issues fresh ones.
FILE_URL_MAX_AGE_SECONDS = 15 * 60
# A proof's "exp" may lie this far in the past (clock skew between the site and the desk).
_JWT_LEEWAY_SECONDS = 30
# Heartbeats come every 20 s; writing online_until at most this often keeps the row quiet.
_ONLINE_WRITE_EVERY_SECONDS = 10
HISTORY_LIMIT = 50


class WidgetRefused(Exception):
    """A widget request refused, with the reason shown to the caller and the HTTP status."""

    def __init__(self, reason: str, *, status: int = 403) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclasses.dataclass(frozen=True)
class VerifiedIdentity:
    user_id: str
    name: str = ""
    email: str = ""


# The inbox and its allowed sites --------------------------------------------------------

def channel_get(*, public_key: str) -> WebChatChannel:
    channel = WebChatChannel.objects.select_related("inbox", "calendar").filter(public_key=public_key).first()
    if channel is None:
        raise WidgetRefused("Unknown widget key.", status=404)
    return channel


def desk_origin() -> str:
    parts = urlsplit(settings.SITE_URL)
    return f"{parts.scheme}://{parts.netloc}".lower()


def origin_allowed(*, channel: WebChatChannel, origin: str) -> bool:
    """Whether a page at `origin` may embed this inbox's widget (the desk itself always may)."""
    return origin_allowed_in(origins=channel.origins, origin=origin)


def origin_allowed_in(*, origins: list[str], origin: str) -> bool:
    origin = (origin or "").strip().rstrip("/").lower()
    if not origin or origin == "null":
        return False
    return "*" in origins or origin in origins or origin == desk_origin()


# Visitor tokens -------------------------------------------------------------------------

def _token_signer() -> signing.TimestampSigner:
    # sep "." keeps the token inside the RFC 6455 subprotocol alphabet (base64url, digits, ".").
    return signing.TimestampSigner(salt=_TOKEN_SALT, sep=".")


def visitor_token(*, visitor: Visitor) -> str:
    return _token_signer().sign_object({"v": visitor.uuid.hex, "k": visitor.channel_id})


def visitor_from_token(*, channel: WebChatChannel, token: str) -> Visitor:
    """The visitor a token names, if it is ours, fresh and for this inbox's widget."""
    if not token:
        raise WidgetRefused("A visitor token is required.")
    try:
        data = _token_signer().unsign_object(token, max_age=settings.WIDGET_TOKEN_MAX_AGE_SECONDS)
    except signing.SignatureExpired:
        raise WidgetRefused("The visitor token expired: start a new session.") from None
    except (signing.BadSignature, ValueError, TypeError):
        raise WidgetRefused("The visitor token is not valid.") from None
    if not isinstance(data, dict) or data.get("k") != channel.pk or not isinstance(data.get("v"), str):
        raise WidgetRefused("The visitor token belongs to another widget.")
    try:
        visitor_uuid = uuid.UUID(hex=data["v"])
    except ValueError:
        raise WidgetRefused("The visitor token is not valid.") from None
    visitor = Visitor.objects.select_related("channel__inbox", "contact").filter(uuid=visitor_uuid, channel=channel).first()
    if visitor is None:
        raise WidgetRefused("The visitor token is not valid.")
    return visitor


# Identity proofs ------------------------------------------------------------------------

def identity_verify(*, channel: WebChatChannel, identity: dict) -> VerifiedIdentity:
    """Check a site's proof of who its logged-in user is. Raises WidgetRefused when it fails."""
    if not isinstance(identity, dict):
        raise WidgetRefused("The identity must be an object.")
    secret = channel.identity_secret
    if "jwt" in identity:
        return _identity_from_jwt(str(identity["jwt"] or ""), secret)
    user_id, user_hash = identity.get("user_id"), identity.get("user_hash")
    if user_id is None and user_hash is None:
        raise WidgetRefused("The identity needs a jwt, or a user_id with its user_hash.")
    user_id = str(user_id or "").strip()
    if not user_id or not isinstance(user_hash, str):
        raise WidgetRefused("The identity needs both user_id and user_hash.")
    expected = hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, user_hash.strip().lower()):
        raise WidgetRefused("The identity proof (user_hash) does not match the user id.")
    # With the HMAC form the name and email are the page's word only: shown, never trusted.
    return VerifiedIdentity(user_id=user_id[:150], name=str(identity.get("name") or "")[:200])


def _identity_from_jwt(token: str, secret: str) -> VerifiedIdentity:
    try:
        claims = jwt.decode(
            token, secret, algorithms=["HS256"], leeway=_JWT_LEEWAY_SECONDS,
            # Many sites' user ids are numbers: accept an integer sub too (as its decimal string).
            options={"require": ["sub", "exp"], "verify_sub": False},
        )
    except jwt.ExpiredSignatureError:
        raise WidgetRefused("The identity token expired.") from None
    except jwt.InvalidTokenError as err:
        raise WidgetRefused(f"The identity token is not valid: {err}.") from None
    lifetime = float(claims["exp"]) - timezone.now().timestamp()
    if lifetime > settings.WIDGET_IDENTITY_MAX_AGE_SECONDS + _JWT_LEEWAY_SECONDS:
        # A long-lived proof is a password in the page: refuse it rather than trust it for days.
        raise WidgetRefused(
            f"The identity token lives too long: exp may be at most {settings.WIDGET_IDENTITY_MAX_AGE_SECONDS} seconds away."
        )
    sub = claims["sub"]
    user_id = str(sub).strip() if isinstance(sub, (str, int)) and not isinstance(sub, bool) else ""
    if not user_id:
        raise WidgetRefused("The identity token's sub must be a non-empty string or an integer.")
    email = str(claims.get("email") or "").strip().lower()
    if email:
        try:
            validate_email(email)
        except ValidationError:
            email = ""
    return VerifiedIdentity(user_id=user_id[:150], name=str(claims.get("name") or "")[:200], email=email)


# Sessions -------------------------------------------------------------------------------

def _latest_conversation(*, channel: WebChatChannel, contact: Contact) -> Conversation | None:
    return (
        Conversation.objects.filter(inbox_id=channel.inbox_id, contact=contact, merged_into__isnull=True)
        .order_by("-last_message_at", "-id").first()
    )


def _clean_email(email: str) -> str:
    email = (email or "").strip().lower()
    if not email:
        return ""
    try:
        validate_email(email)
    except ValidationError:
        raise WidgetRefused("The email address is not valid.", status=400) from None
    return email[:254]


def visitor_session(
    *, channel: WebChatChannel, token: str | None = None, identity: dict | None = None, name: str = "", email: str = ""
) -> Visitor:
    """The visitor behind a widget load: the same one for a valid token, a new one otherwise.

    An identity proof makes the visitor one of the site user's devices: they share the
    contact (found by the external identity "<inbox id>:<user id>") and its latest
    conversation in this inbox. Without a proof nothing links to an existing contact: the
    pre-chat email is the visitor's unverified word and lands on a contact of its own.
    """
    name = (name or "").strip()[:200]
    email = _clean_email(email)
    verified = identity_verify(channel=channel, identity=identity) if identity else None
    current = visitor_from_token(channel=channel, token=token) if token else None
    now = timezone.now()
    with transaction.atomic():
        if verified is not None:
            visitor = _identified_visitor(channel=channel, current=current, verified=verified, name=name)
        elif current is not None and not current.external_user_id:
            visitor = current
        else:
            # A token issued to a proven user, presented without a proof (the site logged the
            # user out, or another person uses the browser), never reopens that user's history.
            visitor = _anonymous_visitor(channel=channel, name=name, email=email)
        if verified is None:
            _anonymous_details(visitor=visitor, name=name, email=email)
        Visitor.objects.filter(pk=visitor.pk).update(last_seen_at=now)
        visitor.last_seen_at = now
    return visitor


def _anonymous_visitor(*, channel: WebChatChannel, name: str, email: str) -> Visitor:
    visitor_uuid = uuid.uuid4()
    # The email goes on the contact as a display field (and the offline-reply address), never
    # as an email identity: an unproven address must not join this chat to that customer.
    contact = Contact.objects.create(name=name, email=email)
    ContactIdentity.objects.create(contact=contact, kind=ContactIdentity.Kind.VISITOR, address=visitor_uuid.hex)
    return Visitor.objects.create(uuid=visitor_uuid, channel=channel, contact=contact, name=name, email=email)


def _anonymous_details(*, visitor: Visitor, name: str, email: str) -> None:
    """A returning anonymous visitor fills in the pre-chat form: update its own contact only."""
    changed = {}
    if name and name != visitor.name:
        changed["name"] = name
    if email and email != visitor.email:
        changed["email"] = email
    if not changed:
        return
    Visitor.objects.filter(pk=visitor.pk).update(**changed)
    for field, value in changed.items():
        setattr(visitor, field, value)
    own_contact = not visitor.contact.identities.exclude(kind=ContactIdentity.Kind.VISITOR).exists()
    if own_contact:
        Contact.objects.filter(pk=visitor.contact_id).update(**changed)


def _identified_visitor(*, channel: WebChatChannel, current: Visitor | None, verified: VerifiedIdentity, name: str) -> Visitor:
    contact = contact_get_or_create(
        kind=ContactIdentity.Kind.EXTERNAL, address=f"{channel.inbox_id}:{verified.user_id}", name=verified.name or name
    )
    contact = contact_survivor(contact)
    if verified.email and not contact.email:
        # The site vouches for this address (it signed it): the contact may be emailed there.
        Contact.objects.filter(pk=contact.pk).update(email=verified.email)
        contact.email = verified.email
    display_name = verified.name or name or contact.name
    if current is not None and current.external_user_id == verified.user_id:
        visitor = current
        updates: dict[str, object] = {"contact": contact}
        if display_name:
            updates["name"] = display_name
    else:
        # An anonymous visitor who logs in, or another user on the same browser: a new
        # device of the proven user; the anonymous chat stays with the anonymous visitor.
        visitor = Visitor.objects.create(
            channel=channel, contact=contact, external_user_id=verified.user_id, name=display_name, email=verified.email
        )
        updates = {}
    latest = _latest_conversation(channel=channel, contact=contact)
    if latest is not None:
        updates["conversation"] = latest
    if updates:
        Visitor.objects.filter(pk=visitor.pk).update(**updates)
        for field, value in updates.items():
            setattr(visitor, field, value)
    return visitor


def visitor_conversation(*, visitor: Visitor) -> Conversation | None:
    """The visitor's conversation, following merges; a proven user's latest one in the inbox."""
    conversation = conversation_survivor(visitor.conversation) if visitor.conversation_id else None
    if conversation is None and visitor.external_user_id:
        conversation = _latest_conversation(channel=visitor.channel, contact=contact_survivor(visitor.contact))
    if conversation is not None and conversation.pk != visitor.conversation_id:
        Visitor.objects.filter(pk=visitor.pk).update(conversation=conversation)
        visitor.conversation = conversation
    return conversation


# Messages -------------------------------------------------------------------------------

def _visible(conversation: Conversation):
    # The customer sees what was said to and by them: never notes or system lines.
    return (
        Message.objects.filter(conversation=conversation, kind__in=[Message.Kind.INBOUND, Message.Kind.OUTBOUND])
        .select_related("author_user", "author_contact").prefetch_related("attachments")
    )


def visitor_messages(*, visitor: Visitor, after: int | None = None, limit: int = HISTORY_LIMIT) -> list[Message]:
    conversation = visitor_conversation(visitor=visitor)
    if conversation is None:
        return []
    messages = _visible(conversation)
    if after is not None:
        return list(messages.filter(id__gt=after).order_by("id")[:500])
    return list(reversed(messages.order_by("-id")[:limit]))


def _client_id(value: object) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except (ValueError, TypeError, AttributeError):
        raise WidgetRefused("client_id must be a UUID.", status=400) from None


def message_text_check(text: object, *, required: bool = True) -> str:
    if not isinstance(text, str):
        raise WidgetRefused("The message text must be a string.", status=400)
    if required and not text.strip():
        raise WidgetRefused("A message needs some text.", status=400)
    if len(text) > settings.WIDGET_MAX_MESSAGE_CHARS:
        raise WidgetRefused(f"The message is longer than {settings.WIDGET_MAX_MESSAGE_CHARS} characters.", status=400)
    return text.strip()


def visitor_message_send(
    *, visitor: Visitor, text: object, client_id: object, attachments: tuple[IncomingAttachment, ...] = ()
) -> tuple[Message, bool]:
    """A visitor writes. Returns (message, created); a repeated client_id returns the first.

    The first message opens the conversation and its ticket. The visitor row is locked so
    two tabs sending at once cannot open two conversations.
    """
    text = message_text_check(text, required=not attachments)
    client_id = _client_id(client_id)
    for item in attachments:
        if len(item.content) > settings.ATTACHMENT_MAX_BYTES:
            raise WidgetRefused(f"The file is larger than the {settings.ATTACHMENT_MAX_BYTES} byte limit.", status=413)
    channel = visitor.channel
    with transaction.atomic():
        visitor = Visitor.objects.select_for_update().select_related("channel__inbox", "contact").get(pk=visitor.pk)
        conversation = visitor_conversation(visitor=visitor)
        duplicate = _duplicate(visitor=visitor, conversation=conversation, client_id=client_id)
        if duplicate is not None:
            return duplicate, False
        if conversation is None and channel.pre_chat_email_required and not visitor.email and not visitor.contact.email:
            raise WidgetRefused("An email address is required before the first message.", status=400)
        incoming = IncomingMessage(
            channel=Channel.WEBCHAT,
            external_id=client_id,
            from_address=visitor.email or "",
            from_name=visitor.name,
            subject=_subject(text, visitor) if conversation is None else "",
            text=text,
            attachments=attachments,
        )
        thread = ThreadMatch(conversation, Message.ThreadRule.NEW if conversation is None else "")
        try:
            with transaction.atomic():
                message = inbound_message_record(
                    inbox=channel.inbox, contact=contact_survivor(visitor.contact), incoming=incoming, thread=thread
                )
        except IntegrityError:
            # The same client_id committed by a concurrent request between our check and insert.
            duplicate = _duplicate(visitor=visitor, conversation=conversation, client_id=client_id)
            if duplicate is None:
                raise
            return duplicate, False
        if conversation is None:
            conversation = message.conversation
            # Every device of the same proven user without a conversation joins this one.
            same_person = Q(pk=visitor.pk)
            if visitor.external_user_id:
                same_person |= Q(channel=channel, contact=visitor.contact, conversation__isnull=True)
            Visitor.objects.filter(same_person).update(conversation=conversation)
            visitor.conversation = conversation
        Visitor.objects.filter(pk=visitor.pk).update(last_seen_at=timezone.now())
        message = _visible(conversation).get(pk=message.pk)
        realtime.push_after_commit(
            realtime.customer_group(conversation.pk), {"type": "widget.message", "message": message_json(message, channel=channel)}
        )
    return message, True


def _duplicate(*, visitor: Visitor, conversation: Conversation | None, client_id: str) -> Message | None:
    existing = Message.objects.filter(channel=Channel.WEBCHAT, external_id=client_id).first()
    if existing is None:
        return None
    if conversation is None or existing.conversation_id != conversation.pk or existing.kind != Message.Kind.INBOUND:
        # Someone else's id: answering with their message would let a visitor read it.
        raise WidgetRefused("This client_id is already used by another message.", status=409)
    return _visible(conversation).get(pk=existing.pk)


def _subject(text: str, visitor: Visitor) -> str:
    first_line = text.strip().splitlines()[0] if text.strip() else ""
    if first_line:
        return first_line[:80] + ("…" if len(first_line) > 80 else "")
    return f"Chat with {visitor.name}" if visitor.name else "Web chat"


# Typing, seen, online -------------------------------------------------------------------

def visitor_typing(*, visitor: Visitor, typing: bool) -> None:
    """Tell the agents watching the visitor's conversation (nothing to show before one exists)."""
    conversation = visitor_conversation(visitor=visitor)
    if conversation is None:
        return
    realtime.push_after_commit(
        realtime.inbox_group(conversation.inbox_id),
        {
            "type": "desk.typing",
            "conversation_id": conversation.pk,
            "typing": bool(typing),
            "who": "visitor",
            "user_id": None,
            "name": visitor.name or visitor.contact.name or "Visitor",
        },
    )


def visitor_seen(*, visitor: Visitor, message_id: object) -> None:
    """The visitor saw their conversation up to `message_id`: agent replies up to it are read."""
    try:
        message_id = int(message_id)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise WidgetRefused("message_id must be a number.", status=400) from None
    conversation = visitor_conversation(visitor=visitor)
    if conversation is None or not _visible(conversation).filter(pk=message_id).exists():
        raise WidgetRefused("No such message in this conversation.", status=404)
    now = timezone.now()
    with transaction.atomic():
        Conversation.objects.filter(pk=conversation.pk).update(contact_last_seen_at=now)
        realtime.publish(type="conversation.updated", inbox_id=conversation.inbox_id, conversation_id=conversation.pk)
        unread = (
            Message.objects.filter(
                conversation=conversation, kind=Message.Kind.OUTBOUND, channel=Channel.WEBCHAT, id__lte=message_id,
                delivery_status__in=[Message.DeliveryStatus.SENT, Message.DeliveryStatus.DELIVERED],
            ).select_related("conversation")
        )
        for message in unread:
            if delivery_status_record(message=message, status=Message.DeliveryStatus.READ):
                realtime.push_after_commit(
                    realtime.customer_group(conversation.pk),
                    {"type": "widget.status", "message_id": message.pk, "status": Message.DeliveryStatus.READ},
                )


def visitor_heartbeat(*, visitor_id: int, last_write: datetime | None = None) -> datetime | None:
    """Keep the visitor counted as connected. Returns the write time, or `last_write` if skipped."""
    now = timezone.now()
    if last_write is not None and now - last_write < timedelta(seconds=_ONLINE_WRITE_EVERY_SECONDS):
        return last_write
    Visitor.objects.filter(pk=visitor_id).update(
        online_until=now + timedelta(seconds=settings.WIDGET_ONLINE_SECONDS), last_seen_at=now
    )
    return now


def visitor_offline(*, visitor_id: int) -> None:
    Visitor.objects.filter(pk=visitor_id).update(online_until=timezone.now())


def visitors_online(*, conversation: Conversation) -> bool:
    """Whether a widget showing this conversation is connected now (any device of the person)."""
    same = Q(conversation=conversation) | Q(channel__inbox_id=conversation.inbox_id, contact_id=conversation.contact_id)
    return Visitor.objects.filter(same, online_until__gt=timezone.now()).exists()


# Serialisation --------------------------------------------------------------------------

def _file_signer() -> signing.TimestampSigner:
    return signing.TimestampSigner(salt=_FILE_SALT, sep=".")


def attachment_url(*, channel: WebChatChannel, attachment: Attachment) -> str:
    signed = _file_signer().sign(attachment.uuid.hex)
    sig = signed[len(attachment.uuid.hex) + 1:]
    return f"{settings.SITE_URL}/widget/api/{channel.public_key}/files/{attachment.uuid.hex}?sig={sig}"


def attachment_for_signed_url(*, channel: WebChatChannel, file_uuid: str, sig: str) -> Attachment:
    """The attachment a signed URL names, if the signature is ours, fresh, and for this inbox."""
    try:
        file_uuid = uuid.UUID(hex=file_uuid).hex
        _file_signer().unsign(f"{file_uuid}.{sig}", max_age=FILE_URL_MAX_AGE_SECONDS)
    except signing.SignatureExpired:
        raise WidgetRefused("This file link expired: reopen the chat for a fresh one.") from None
    except (signing.BadSignature, ValueError):
        raise WidgetRefused("This file link is not valid.") from None
    attachment = (
        Attachment.objects.select_related("message__conversation")
        .filter(uuid=file_uuid, message__conversation__inbox_id=channel.inbox_id,
                message__kind__in=[Message.Kind.INBOUND, Message.Kind.OUTBOUND]).first()
    )
    if attachment is None:
        raise WidgetRefused("No such file.", status=404)
    return attachment


def _author_name(message: Message) -> str:
    if message.kind == Message.Kind.OUTBOUND:
        user = message.author_user
        return (user.first_name or user.get_username()) if user is not None else ""
    contact = message.author_contact
    return contact.name if contact is not None else ""


def message_json(message: Message, *, channel: WebChatChannel) -> dict:
    inbound = message.kind == Message.Kind.INBOUND
    return {
        "id": message.pk,
        "client_id": message.external_id if inbound and message.channel == Channel.WEBCHAT else None,
        "direction": "in" if inbound else "out",
        "text": message.text_display or message.text,
        "created_at": message.created_at.isoformat(),
        "author_name": _author_name(message),
        "status": message.delivery_status,
        "attachments": [
            {"name": a.filename, "content_type": a.content_type, "size": a.size, "url": attachment_url(channel=channel, attachment=a)}
            for a in message.attachments.all()
        ],
    }


def visitor_json(visitor: Visitor) -> dict:
    return {"id": visitor.uuid.hex, "name": visitor.name, "email": visitor.email}


def session_json(*, visitor: Visitor) -> dict:
    conversation = visitor_conversation(visitor=visitor)
    return {
        "token": visitor_token(visitor=visitor),
        "visitor": visitor_json(visitor),
        "conversation_id": conversation.pk if conversation else None,
        "messages": [message_json(m, channel=visitor.channel) for m in visitor_messages(visitor=visitor)],
        "agent_last_seen_at": conversation.agent_last_seen_at.isoformat() if conversation and conversation.agent_last_seen_at else None,
    }


def config_json(*, channel: WebChatChannel, now: datetime | None = None) -> dict:
    return {
        "name": channel.inbox.name,
        "greeting": channel.greeting,
        "pre_chat_form": channel.pre_chat_form,
        "pre_chat_email_required": channel.pre_chat_email_required,
        "reply_time": reply_time(channel=channel, now=now or timezone.now()),
        "max_upload_bytes": settings.ATTACHMENT_MAX_BYTES,
        "max_message_chars": settings.WIDGET_MAX_MESSAGE_CHARS,
    }


def reply_time(*, channel: WebChatChannel, now: datetime) -> dict:
    calendar = channel.calendar
    hours = calendars.working_hours(calendar) if calendar is not None else None
    if hours is not None and not calendars.is_open_at(hours, now):
        opening = calendars.next_opening_after(hours, now)
        if opening is None:
            return {"open": False, "text": "We're away"}
        local = opening.astimezone(hours.zone)
        return {"open": False, "text": f"We're away — back {local.strftime('%A %H:%M')} ({calendar.time_zone})"}
    return {"open": True, "text": f"We typically reply within {humanize_minutes(channel.reply_time_minutes)}"}


def humanize_minutes(minutes: int) -> str:
    minutes = max(1, int(minutes))

    def unit(n: int, word: str) -> str:
        return f"{n} {word}{'' if n == 1 else 's'}"

    if minutes < 60:
        return unit(minutes, "minute")
    if minutes < 24 * 60:
        hours, rest = divmod(minutes, 60)
        return unit(hours, "hour") + (f" {unit(rest, 'minute')}" if rest else "")
    days, rest = divmod(minutes, 24 * 60)
    return unit(days, "day") + (f" {unit(rest // 60, 'hour')}" if rest >= 60 else "")
