"""Writes to the timeline. One function per use case; callers own the transaction."""
from __future__ import annotations

import dataclasses
import logging
import uuid
from datetime import datetime, timedelta
from typing import NoReturn

import magic
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from conversations import realtime
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
from conversations.phones import e164
from conversations.selectors import sms_opt_out, sms_recipient

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
    if kind == ContactIdentity.Kind.EMAIL:
        return address.lower()
    if kind == ContactIdentity.Kind.PHONE:
        # "+1 (415) 555-0100" and "+14155550100" are one number: one identity, one consent.
        return e164(address) or address
    return address


def contact_get_or_create(*, kind: str, address: str, name: str = "") -> Contact:
    """The contact owning this identity, created with it when new. Safe under races."""
    return contact_for_identity(kind=kind, address=address) or contact_create(kind=kind, address=address, name=name)


def contact_for_identity(*, kind: str, address: str) -> Contact | None:
    identity = ContactIdentity.objects.select_related("contact").filter(kind=kind, address=normalize_address(kind, address)).first()
    return identity.contact if identity is not None else None


def contact_create(*, kind: str, address: str, name: str = "") -> Contact:
    """A new contact with this identity, for an address nobody owned a moment ago; the owner
    if another worker created the same identity between that read and this write."""
    address = normalize_address(kind, address)
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
        return ContactIdentity.objects.select_related("contact").get(kind=kind, address=address).contact


def conversation_create(*, inbox: Inbox, contact: Contact, subject: str, first_message: IncomingMessage | None = None) -> Conversation:
    """A new conversation. Given the customer message that opens it, the row is written already
    summarising that message, which is then added with `message_receive(first=True)`: one
    statement fewer than inserting and then updating the summary."""
    if first_message is None:
        return Conversation.objects.create(inbox=inbox, contact=contact, subject=subject[:500])
    now = timezone.now()
    return Conversation.objects.create(
        inbox=inbox, contact=contact, subject=subject[:500], last_message_at=now, waiting_since=now, message_count=1,
        last_message_preview=_preview(first_message.text_display or first_message.text), last_message_channel=first_message.channel,
    )


def message_receive(
    *,
    conversation: Conversation,
    contact: Contact,
    incoming: IncomingMessage,
    thread_rule: str,
    first: bool = False,
) -> Message:
    """Append a customer message to the timeline. Call inside transaction.atomic().

    `first`: the conversation was just created summarising this message (conversation_create).
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
    if not first:
        _conversation_touch(conversation, message, now=now, customer_waiting=True)
    realtime.publish(type="message.created", inbox_id=conversation.inbox_id, conversation_id=conversation.id, message_id=message.id)
    return message


def _preview(text: str) -> str:
    return text.strip().replace("\n", " ")[:200]


def _conversation_touch(conversation: Conversation, message: Message, *, now: datetime, customer_waiting: bool | None) -> None:
    preview = _preview(message.text_display or message.text)
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
    return _outbound_queue(conversation=conversation, author=author, text=text, channel=channel or conversation.inbox.kind,
                           customer_waiting=False)


def automated_reply_create(*, conversation: Conversation, text: str, channel: str) -> Message:
    """Queue a message the desk writes itself (no author, e.g. the satisfaction question)
    through the same outbox as agent replies, so it is delivered, retried and shown alike.

    Unlike an agent's reply it answers nobody: the customer's wait (waiting_since) is left
    as it is. Raises ApplicationError for a channel that cannot carry it (an opted-out number).
    """
    if not text.strip():
        raise ApplicationError("An automated message needs some text.")
    return _outbound_queue(conversation=conversation, author=None, text=text, channel=channel, customer_waiting=None)


def _outbound_queue(*, conversation: Conversation, author: AbstractBaseUser | None, text: str, channel: str,
                    customer_waiting: bool | None) -> Message:
    if channel not in (Channel.EMAIL, Channel.SMS, Channel.WEBCHAT):
        raise ApplicationError(f"Cannot send over {channel}.")
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
        _conversation_touch(conversation, message, now=now, customer_waiting=customer_waiting)
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


# --- One customer across channels --------------------------------------------------------


def reply_channel_choose(*, conversation: Conversation, channel: str | None = None) -> str:
    """The channel an agent's reply goes out on: the one asked for if the conversation can be
    answered on it, else the default of reply_channels. Raises ApplicationError with the reason."""
    from conversations.selectors import reply_channels

    options = reply_channels(conversation)
    if not channel:
        available = [option for option in options if option.available]
        if not available:
            raise ApplicationError(_no_channel_reason(options))
        return available[0].channel
    option = next((o for o in options if o.channel == channel), None)
    if option is None:
        return _refuse_channel(channel, options)
    if not option.available:
        raise ApplicationError(option.reason)
    return channel


def _refuse_channel(channel: str, options: list) -> NoReturn:
    label = dict(Channel.choices).get(channel, channel)
    usable = ", ".join(o.label for o in options if o.available)
    hint = f" Available: {usable}." if usable else ""
    raise ApplicationError(f"This conversation cannot be answered by {label}: {_why_not(channel)}.{hint}")


def _why_not(channel: str) -> str:
    return {
        Channel.EMAIL: "the inbox has no email address or the customer none",
        Channel.SMS: "the inbox has no SMS number or the customer no phone number",
        Channel.WEBCHAT: "the inbox has no web chat or the conversation no chat visitor",
    }.get(channel, "not a reply channel")


def _no_channel_reason(options: list) -> str:
    blocked = [o.reason for o in options if not o.available]
    return " ".join(["No channel to reply on."] + blocked)


def contact_merge(*, source: Contact, target: Contact, by: AbstractBaseUser) -> Contact:
    """Merge `source` into `target`: one customer across channels.

    Identities, conversations, web chat visitors and message authorship move to the target;
    the target's empty name, email and phone are filled from the source. The source keeps its
    row (old links) with merged_into/merged_at. Each affected conversation gets a system line
    and a conversation.updated event.
    """
    if source.pk == target.pk:
        raise ApplicationError("A contact cannot be merged into itself.")
    with transaction.atomic():
        # Both rows locked, in id order (two merges in opposite directions cannot deadlock).
        locked = {c.pk: c for c in Contact.objects.select_for_update().filter(pk__in=sorted([source.pk, target.pk])).order_by("pk")}
        source, target = locked[source.pk], locked[target.pk]
        if target.merged_into_id is not None:
            raise ApplicationError(f"{target} was merged into contact #{target.merged_into_id}: merge into that one instead.")
        if source.merged_into_id is not None:
            raise ApplicationError(f"{source} was already merged into contact #{source.merged_into_id}.")
        moved = list(Conversation.objects.filter(contact=source).values_list("pk", "inbox_id"))
        ContactIdentity.objects.filter(contact=source).update(contact=target)
        Conversation.objects.filter(contact=source).update(contact=target)
        Message.objects.filter(author_contact=source).update(author_contact=target)
        source.visitors.update(contact=target)  # channels_in.Visitor, through its reverse accessor
        filled = [field for field in ("name", "email", "phone") if not getattr(target, field) and getattr(source, field)]
        for field in filled:
            setattr(target, field, getattr(source, field))
        if filled:
            target.save(update_fields=filled)
        source.merged_into, source.merged_at = target, timezone.now()
        source.save(update_fields=["merged_into", "merged_at"])
        text = f"{_user_name(by)} merged contact {source} (#{source.pk}) into {target} (#{target.pk})."
        for conversation_id, inbox_id in moved:
            conversation = Conversation(pk=conversation_id, inbox_id=inbox_id)
            system_event_create(conversation=conversation, text=text, author=by)
            realtime.publish(type="conversation.updated", inbox_id=inbox_id, conversation_id=conversation_id)
    return target


def conversation_summary_recompute(*, conversation_id: int) -> None:
    """Derive the conversation's denormalised fields from its timeline (after messages moved).

    As the services maintain them: every message counts; customer messages and replies set the
    last-message fields; the oldest customer message after the last reply starts the wait.
    """
    rows = Message.objects.filter(conversation_id=conversation_id).order_by("created_at", "id").values_list(
        "kind", "channel", "text", "text_display", "created_at")
    fields: dict[str, object] = {"message_count": 0, "waiting_since": None, "last_message_at": None,
                                 "last_message_preview": "", "last_message_channel": ""}
    for kind, channel, text, text_display, created_at in rows.iterator():
        fields["message_count"] += 1
        if kind not in (Message.Kind.INBOUND, Message.Kind.OUTBOUND):
            continue
        fields["last_message_at"] = created_at
        fields["last_message_preview"] = _preview(text_display or text)
        fields["last_message_channel"] = channel
        fields["waiting_since"] = (fields["waiting_since"] or created_at) if kind == Message.Kind.INBOUND else None
    Conversation.objects.filter(pk=conversation_id).update(**fields)


def conversation_mark_seen_by_agent(*, conversation: Conversation) -> datetime:
    """An agent has the conversation open: record it and tell the customer's widget (seen receipt)."""
    now = timezone.now()
    Conversation.objects.filter(pk=conversation.pk).update(agent_last_seen_at=now)
    conversation.agent_last_seen_at = now
    realtime.push_after_commit(realtime.customer_group(conversation.pk), {"type": "widget.seen", "agent_last_seen_at": now.isoformat()})
    return now


def _user_name(user: AbstractBaseUser | None) -> str:
    if user is None:
        return "Someone"
    return user.get_full_name() or user.get_username()
