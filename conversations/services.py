"""Writes to the timeline. One function per use case; callers own the transaction."""
from __future__ import annotations

import dataclasses
import logging
import uuid
from datetime import datetime, timedelta

import magic
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from conversations import realtime
from conversations.selectors import sms_opt_out, sms_recipient
from conversations.models import (
    DELIVERY_ORDER,
    Attachment,
    Channel,
    Contact,
    ContactIdentity,
    Conversation,
    Inbox,
    Message,
)

OUTBOUND_DELIVER_TASK = "channels_in.outbound_deliver"
logger = logging.getLogger(__name__)


class ApplicationError(Exception):
    """A request that is valid in form but not allowed in the current state."""


@dataclasses.dataclass(frozen=True)
class IncomingAttachment:
    filename: str
    content: bytes
    content_id: str = ""


@dataclasses.dataclass(frozen=True)
class IncomingMessage:
    """A customer message normalised at the edge; no provider shapes past this point."""

    channel: str
    from_address: str
    from_name: str = ""
    to_address: str = ""
    subject: str = ""
    text: str = ""
    text_display: str = ""
    html: str = ""
    external_id: str | None = None
    rfc_message_id: str = ""
    in_reply_to: str = ""
    references: str = ""
    attachments: tuple[IncomingAttachment, ...] = ()


def normalize_address(kind: str, address: str) -> str:
    address = address.strip()
    return address.lower() if kind == ContactIdentity.Kind.EMAIL else address


def contact_get_or_create(*, kind: str, address: str, name: str = "") -> Contact:
    """The contact owning this identity, created with it when new. Safe under races."""
    address = normalize_address(kind, address)
    identity = ContactIdentity.objects.select_related("contact").filter(kind=kind, address=address).first()
    if identity is not None:
        return identity.contact
    try:
        with transaction.atomic():
            contact = Contact.objects.create(
                name=name[:200],
                email=address if kind == ContactIdentity.Kind.EMAIL else "",
                phone=address if kind == ContactIdentity.Kind.PHONE else "",
            )
            ContactIdentity.objects.create(contact=contact, kind=kind, address=address)
            return contact
    except IntegrityError:
        # Another worker created the same identity between our read and write.
        return ContactIdentity.objects.select_related("contact").get(kind=kind, address=address).contact


def conversation_create(*, inbox: Inbox, contact: Contact, subject: str) -> Conversation:
    return Conversation.objects.create(inbox=inbox, contact=contact, subject=subject[:500])


def message_receive(
    *,
    conversation: Conversation,
    contact: Contact,
    incoming: IncomingMessage,
    thread_rule: str,
) -> Message:
    """Append a customer message to the timeline. Call inside transaction.atomic().

    Raises IntegrityError if a message with the same channel id exists (a duplicate).
    """
    now = timezone.now()
    message = Message.objects.create(
        conversation=conversation,
        kind=Message.Kind.INBOUND,
        channel=incoming.channel,
        author_contact=contact,
        from_address=incoming.from_address[:320],
        to_address=incoming.to_address[:320],
        subject=incoming.subject[:500],
        text=incoming.text,
        text_display=incoming.text_display or incoming.text,
        html=incoming.html,
        external_id=incoming.external_id,
        rfc_message_id=incoming.rfc_message_id[:500],
        in_reply_to=incoming.in_reply_to[:500],
        references=incoming.references,
        thread_rule=thread_rule,
    )
    _conversation_touch(conversation, message, now=now, customer_waiting=True)
    realtime.publish(type="message.created", inbox_id=conversation.inbox_id, conversation_id=conversation.id, message_id=message.id)
    return message


def _conversation_touch(conversation: Conversation, message: Message, *, now: datetime, customer_waiting: bool | None) -> None:
    preview = (message.text_display or message.text).strip().replace("\n", " ")[:200]
    updates: dict[str, object] = {
        "last_message_at": now,
        "last_message_preview": preview,
        "last_message_channel": message.channel,
        "message_count": F("message_count") + 1,
    }
    if customer_waiting is True and conversation.waiting_since is None:
        updates["waiting_since"] = now
        conversation.waiting_since = now
    elif customer_waiting is False:
        updates["waiting_since"] = None
        conversation.waiting_since = None
    Conversation.objects.filter(pk=conversation.pk).update(**updates)
    conversation.last_message_at = now
    conversation.last_message_preview = preview


def attachments_store(*, message: Message, attachments: tuple[IncomingAttachment, ...]) -> list[str]:
    """Store attachments within the limits; returns the notices for those refused."""
    limit, max_count = settings.ATTACHMENT_MAX_BYTES, settings.ATTACHMENT_MAX_COUNT
    notices: list[str] = []
    stored = 0
    for item in attachments:
        name = _safe_filename(item.filename)
        if len(item.content) > limit:
            notices.append(f"Attachment {name} ({_mb(len(item.content))}) was refused: larger than the {_mb(limit)} limit.")
            continue
        if stored >= max_count:
            notices.append(f"Attachment {name} was refused: more than {max_count} attachments in one message.")
            continue
        attachment = Attachment(
            message=message,
            filename=name,
            content_type=magic.from_buffer(item.content[:8192], mime=True) or "application/octet-stream",
            size=len(item.content),
            content_id=item.content_id.strip("<>")[:255],
        )
        attachment.file.save(attachment.uuid.hex, ContentFile(item.content), save=False)
        attachment.save()
        stored += 1
    if notices:
        Message.objects.filter(pk=message.pk).update(notices=message.notices + notices)
        message.notices = message.notices + notices
    return notices


def _safe_filename(name: str) -> str:
    name = (name or "attachment").replace("\\", "/").rsplit("/", 1)[-1].strip().strip(".")
    return (name or "attachment")[:255]


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def email_message_id_new() -> str:
    return f"{uuid.uuid4().hex}@{settings.EMAIL_MESSAGE_ID_DOMAIN}"


def reply_create(*, conversation: Conversation, author: AbstractBaseUser, text: str, channel: str | None = None) -> Message:
    """Queue an agent's reply (the outbox row) and enqueue its delivery after commit."""
    if not text.strip():
        raise ApplicationError("A reply needs some text.")
    channel = channel or conversation.inbox.kind
    if channel not in (Channel.EMAIL, Channel.SMS, Channel.WEBCHAT):
        raise ApplicationError(f"Cannot reply over {channel}.")
    if channel == Channel.SMS:
        opted_out = sms_opt_out(sms_recipient(conversation))
        if opted_out is not None:
            raise ApplicationError(sms_opt_out_reason(opted_out))
    now = timezone.now()
    with transaction.atomic():
        message = Message.objects.create(
            conversation=conversation,
            kind=Message.Kind.OUTBOUND,
            channel=channel,
            author_user=author,
            text=text,
            text_display=text,
            subject=conversation.subject,
            # Web chat too: a reply to an offline visitor goes out by email, and their answer
            # threads on this id.
            rfc_message_id=email_message_id_new() if channel in (Channel.EMAIL, Channel.WEBCHAT) else "",
            thread_rule=Message.ThreadRule.AGENT,
            delivery_status=Message.DeliveryStatus.QUEUED,
            next_attempt_at=_sweep_due(now),
            delivery_updated_at=now,
        )
        _conversation_touch(conversation, message, now=now, customer_waiting=False)
        realtime.publish(type="message.created", inbox_id=conversation.inbox_id, conversation_id=conversation.id, message_id=message.id)
        transaction.on_commit(lambda: outbound_enqueue(message_id=message.id))
    return message


def sms_opt_out_reason(identity: ContactIdentity) -> str:
    when = timezone.localtime(identity.sms_opted_out_at).strftime("%Y-%m-%d %H:%M %Z")
    keyword = identity.sms_consent_keyword or "STOP"
    return (f"{identity.address} opted out of SMS ({keyword}, {when}): nothing is sent to this number "
            "until the customer texts START.")


def _sweep_due(now: datetime) -> datetime:
    # Enqueued right after commit; the sweeper only steps in if that enqueue was lost.
    return now + timedelta(seconds=settings.HELPDESK["QUEUE_STUCK_AFTER_SECONDS"])


def outbound_enqueue(*, message_id: int) -> None:
    """Hand a queued message to the delivery workers. Never raises: the sweeper retries."""
    from helpdesk.celery import app

    try:
        app.send_task(OUTBOUND_DELIVER_TASK, args=[message_id])
    except Exception:  # noqa: BLE001 - broker down: the row stays queued and is swept later
        logger.warning("could not enqueue delivery of message %s", message_id, exc_info=True)


def note_create(*, conversation: Conversation, author: AbstractBaseUser, text: str) -> Message:
    if not text.strip():
        raise ApplicationError("A note needs some text.")
    with transaction.atomic():
        message = _internal_message_create(conversation=conversation, kind=Message.Kind.NOTE, author=author, text=text)
        realtime.publish(type="message.created", inbox_id=conversation.inbox_id, conversation_id=conversation.id, message_id=message.id)
    return message


def system_event_create(*, conversation: Conversation, text: str, author: AbstractBaseUser | None = None) -> Message:
    """A line in the timeline recording what happened (status change, assignment, ...)."""
    return _internal_message_create(conversation=conversation, kind=Message.Kind.SYSTEM, author=author, text=text)


def _internal_message_create(*, conversation: Conversation, kind: str, author: AbstractBaseUser | None, text: str) -> Message:
    """A timeline entry the customer never sees: it counts as a message, not as activity."""
    message = Message.objects.create(
        conversation=conversation, kind=kind, channel=Channel.INTERNAL, author_user=author, text=text, text_display=text
    )
    Conversation.objects.filter(pk=conversation.pk).update(message_count=F("message_count") + 1)
    return message


def delivery_status_record(*, message: Message, status: str, reason: str = "") -> bool:
    """Move a message's delivery status forward; a late or repeated receipt changes nothing.

    Returns True when the status changed.
    """
    rank = DELIVERY_ORDER[status]
    earlier = [s for s, r in DELIVERY_ORDER.items() if r < rank]
    updates: dict[str, object] = {"delivery_status": status, "delivery_updated_at": timezone.now()}
    if status == Message.DeliveryStatus.FAILED:
        updates["delivery_error"] = reason[:2000]
        updates["next_attempt_at"] = None
    with transaction.atomic():
        changed = Message.objects.filter(pk=message.pk, delivery_status__in=earlier).update(**updates)
        if changed:
            realtime.publish(
                type="message.updated",
                inbox_id=message.conversation.inbox_id,
                conversation_id=message.conversation_id,
                message_id=message.pk,
            )
    return bool(changed)


def reply_retry(*, message: Message) -> None:
    """An agent asks to send a failed reply again."""
    if message.kind != Message.Kind.OUTBOUND or message.delivery_status != Message.DeliveryStatus.FAILED:
        raise ApplicationError("Only a failed reply can be sent again.")
    now = timezone.now()
    with transaction.atomic():
        changed = Message.objects.filter(pk=message.pk, delivery_status=Message.DeliveryStatus.FAILED).update(
            delivery_status=Message.DeliveryStatus.QUEUED,
            delivery_error="",
            delivery_attempts=0,
            next_attempt_at=_sweep_due(now),
            delivery_updated_at=now,
        )
        if not changed:
            raise ApplicationError("The reply is no longer failed.")
        realtime.publish(type="message.updated", inbox_id=message.conversation.inbox_id, conversation_id=message.conversation_id, message_id=message.pk)
        transaction.on_commit(lambda: outbound_enqueue(message_id=message.pk))
