"""Inbound events into the timeline, outbound messages to providers, and the sweeper."""
from __future__ import annotations

import hashlib
import logging
import random
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from channels_in.adapters import AdapterError, get_adapter
from channels_in.adapters.email import POSTMARK_JSON, ParsedEmail, email_channel_for_recipients, parse_inbound, postmark_inbound_parse
from channels_in.models import InboundEvent
from conversations import realtime
from conversations.models import Channel, Contact, ContactIdentity, Inbox, Message
from conversations.selectors import conversation_survivor
from conversations.services import (
    IncomingMessage,
    contact_create,
    contact_for_identity,
    delivery_status_record,
    normalize_address,
    outbound_enqueue,
)
from conversations.threading import ThreadMatch, thread_find
from tickets.services import inbound_message_record

logger = logging.getLogger(__name__)

INBOUND_PROCESS_TASK = "channels_in.inbound_process"
# InboundEvent.provider of Twilio's SMS webhooks; every other provider name is an email provider.
SMS_PROVIDER = "twilio"


class InboundRejected(Exception):
    """The event can never become a message (no inbox for it, unreadable): a permanent failure."""


def _conf(name: str) -> int:
    return settings.HELPDESK[name]


# Inbound -------------------------------------------------------------------------------

def inbound_event_record(*, provider: str, event_id: str | None, raw: bytes, recipient: str = "", meta: dict | None = None) -> tuple[InboundEvent, bool]:
    """Store a provider's delivery durably, once. Returns (event, created).

    A repeated delivery (same provider and event id) is found, not stored again. The
    processing task is enqueued after commit; if the broker is down the sweeper does it.
    """
    event_id = event_id or hashlib.sha256(raw).hexdigest()
    try:
        with transaction.atomic():
            event = InboundEvent.objects.create(provider=provider, event_id=event_id[:300], raw=raw, recipient=recipient[:320], meta=meta or {})
    except IntegrityError:
        return InboundEvent.objects.get(provider=provider, event_id=event_id[:300]), False
    transaction.on_commit(lambda: inbound_enqueue(event_id=event.pk))
    return event, True


def inbound_enqueue(*, event_id: int) -> None:
    from helpdesk.celery import app

    try:
        app.send_task(INBOUND_PROCESS_TASK, args=[event_id])
    except Exception:  # noqa: BLE001 - the event is stored; the sweeper enqueues it later
        logger.warning("could not enqueue inbound event %s", event_id, exc_info=True)


def inbound_event_process(*, event_id: int) -> Message | None:
    """Turn a stored event into a timeline message, exactly once.

    The claim (pending -> processed) and the message are one transaction: a worker that
    dies midway rolls both back, and the sweeper hands the event to another worker. The
    email is parsed before that transaction opens: parsing is CPU work, and SQLite's write
    lock (or PostgreSQL's row locks) should be held for the writes only.
    """
    bumped = InboundEvent.objects.filter(pk=event_id, status=InboundEvent.Status.PENDING).update(attempts=F("attempts") + 1)
    if not bumped:
        return None
    try:
        event = InboundEvent.objects.get(pk=event_id)
        parse, record = _inbound_steps(event.provider)
        parsed = parse(event)
        with transaction.atomic():
            claimed = InboundEvent.objects.filter(pk=event_id, status=InboundEvent.Status.PENDING).update(
                status=InboundEvent.Status.PROCESSED, processed_at=timezone.now(), error=""
            )
            if not claimed:
                return None
            message = record(parsed)
            InboundEvent.objects.filter(pk=event_id).update(message_id=message.pk)
            return message
    except InboundRejected as err:
        _inbound_mark_failed(event_id, str(err))
        return None
    except Exception as err:
        event = InboundEvent.objects.only("attempts").get(pk=event_id)
        if event.attempts >= _conf("INBOUND_MAX_ATTEMPTS"):
            _inbound_mark_failed(event_id, f"Gave up after {event.attempts} attempts: {err!r}")
            return None
        raise


def _inbound_steps(provider: str):  # noqa: ANN202 - (parse, record) pair of the provider's channel
    """How a provider's stored event is parsed (outside the transaction) and recorded (inside).

    `parse(event)` may raise InboundRejected (permanent) or anything else (retried);
    `record(parsed)` writes the message and returns it.
    """
    if provider == SMS_PROVIDER:
        from channels_in import sms

        return sms.sms_event_parse, sms.sms_to_message
    return _email_event_parse, _email_to_message


def _inbound_mark_failed(event_id: int, reason: str) -> None:
    logger.warning("inbound event %s failed: %s", event_id, reason)
    InboundEvent.objects.filter(pk=event_id, status=InboundEvent.Status.PENDING).update(status=InboundEvent.Status.FAILED, error=reason[:2000])


def _email_event_parse(event: InboundEvent) -> ParsedEmail:
    meta = event.meta or {}
    try:
        if meta.get("format") == POSTMARK_JSON:
            parsed = postmark_inbound_parse(bytes(event.raw))
        else:
            parsed = parse_inbound(bytes(event.raw), envelope_recipient=event.recipient, stripped_text=meta.get("stripped_text") or "")
    except Exception as err:  # noqa: BLE001 - unreadable bytes will not improve with retries
        raise InboundRejected(f"Unreadable message: {err}") from err
    if not parsed.incoming.from_address:
        raise InboundRejected("The message has no sender address.")
    return parsed


def _email_to_message(parsed: ParsedEmail) -> Message:
    incoming = parsed.incoming
    email_channel, tokens = email_channel_for_recipients(parsed.recipients)
    if email_channel is None:
        raise InboundRejected(f"No email inbox for recipients {', '.join(parsed.recipients) or '(none)'}.")
    if incoming.external_id:
        duplicate = Message.objects.filter(channel=Channel.EMAIL, external_id=incoming.external_id).first()
        if duplicate is not None:
            # The same Message-ID again (a provider retry or a replay): keep the first.
            return duplicate
    inbox = email_channel.inbox
    contact = contact_for_identity(kind=ContactIdentity.Kind.EMAIL, address=incoming.from_address)
    if contact is None:
        contact = _email_contact_continuing_chat(inbox, incoming, tokens) or contact_create(
            kind=ContactIdentity.Kind.EMAIL, address=incoming.from_address, name=parsed.from_name)
    thread = _email_thread(inbox, contact.pk, incoming, tokens)
    return inbound_message_record(inbox=inbox, contact=contact, incoming=incoming, thread=thread)


# Rules that prove the sender received our mail (the subject tag does not: it is guessable).
_PROOF_RULES = (Message.ThreadRule.IN_REPLY_TO, Message.ThreadRule.REFERENCES, Message.ThreadRule.REPLY_TOKEN)


def _email_thread(inbox: Inbox, contact_id: int | None, incoming: IncomingMessage, tokens: list[str]) -> ThreadMatch:
    thread = thread_find(
        inbox=inbox,
        contact_id=contact_id,
        in_reply_to=incoming.in_reply_to,
        references=incoming.references,
        reply_tokens=tokens,
        subject=incoming.subject,
    )
    # A merged conversation keeps its id (and its reply token): the answer goes where its
    # messages went.
    conversation = conversation_survivor(thread.conversation)
    return ThreadMatch(conversation, thread.rule) if conversation is not thread.conversation else thread


def _email_contact_continuing_chat(inbox: Inbox, incoming: IncomingMessage, tokens: list[str]) -> Contact | None:
    """The chat contact an emailed answer from an address nobody owns comes from, when the
    email proves it.

    A visitor who left an (unverified) email in the pre-chat form gets an agent's reply by
    email; their answer threads into the conversation by our Message-ID or reply token, which
    proves they received our mail. If that address belongs to nobody yet and the conversation's
    contact has no email identity but gave this very address, it becomes the contact's email
    identity: one customer across channels. Anything short of that proof changes no contact.
    """
    address = normalize_address(ContactIdentity.Kind.EMAIL, incoming.from_address)
    thread = _email_thread(inbox, None, incoming, tokens)
    if thread.conversation is None or thread.rule not in _PROOF_RULES:
        return None
    contact = thread.conversation.contact
    if contact.email.strip().lower() != address:
        return None
    if contact.identities.filter(kind=ContactIdentity.Kind.EMAIL).exists():
        return None
    try:
        with transaction.atomic():
            ContactIdentity.objects.create(contact=contact, kind=ContactIdentity.Kind.EMAIL, address=address)
    except IntegrityError:
        return None  # another worker gave the address to a contact meanwhile: that one is the sender
    return contact


# Outbound ------------------------------------------------------------------------------

def outbound_deliver(*, message_id: int) -> None:
    """Deliver one queued reply. Safe to call any number of times: only a claim sends."""
    now = timezone.now()
    # A first attempt goes at once; a retry only once its backoff has passed, so a duplicate
    # task (a redelivery, a sweep) cannot skip the wait.
    due = Q(delivery_attempts=0) | Q(next_attempt_at__lte=now)
    claimed = Message.objects.filter(due, pk=message_id, kind=Message.Kind.OUTBOUND, delivery_status=Message.DeliveryStatus.QUEUED).update(
        delivery_status=Message.DeliveryStatus.SENDING, delivery_attempts=F("delivery_attempts") + 1, delivery_updated_at=now
    )
    if not claimed:
        return
    message = Message.objects.select_related("conversation__inbox", "conversation__contact").get(pk=message_id)
    realtime_publish_updated(message)
    try:
        receipt = get_adapter(message.channel).send(message)
    except AdapterError as err:
        _outbound_failed_attempt(message, str(err), permanent=err.permanent)
        return
    except Exception as err:  # noqa: BLE001 - an unknown error is retried, then shown
        logger.exception("delivery of message %s failed unexpectedly", message_id)
        _outbound_failed_attempt(message, f"Unexpected error: {err!r}", permanent=False)
        return
    with transaction.atomic():
        # The provider's id and the addresses are facts whatever the status: a fast receipt
        # (Twilio's "delivered" callback) may already have moved the status past "sent".
        Message.objects.filter(pk=message_id, external_id__isnull=True).update(
            external_id=receipt.provider_message_id,
            from_address=receipt.from_address[:320],
            to_address=receipt.to_address[:320],
        )
        Message.objects.filter(pk=message_id, delivery_status=Message.DeliveryStatus.SENDING).update(
            delivery_status=Message.DeliveryStatus.SENT,
            delivery_error="",
            next_attempt_at=None,
            delivery_updated_at=timezone.now(),
        )
        realtime_publish_updated(message)


def realtime_publish_updated(message: Message) -> None:
    realtime.publish(type="message.updated", inbox_id=message.conversation.inbox_id, conversation_id=message.conversation_id, message_id=message.pk)


def retry_delay_seconds(attempt: int) -> float:
    """Exponential backoff with full jitter: up to 2, 4, 8, … seconds, capped at 10 minutes."""
    return random.uniform(1, min(600, 2 ** attempt))


def _outbound_failed_attempt(message: Message, reason: str, *, permanent: bool) -> None:
    attempts = Message.objects.only("delivery_attempts").get(pk=message.pk).delivery_attempts
    if permanent or attempts >= _conf("OUTBOUND_MAX_ATTEMPTS"):
        if not permanent:
            reason = f"Gave up after {attempts} attempts. Last error: {reason}"
        delivery_status_record(message=message, status=Message.DeliveryStatus.FAILED, reason=reason)
        return
    # Back to the outbox with a due time; the sweeper enqueues it then (no ETA tasks).
    with transaction.atomic():
        Message.objects.filter(pk=message.pk, delivery_status=Message.DeliveryStatus.SENDING).update(
            delivery_status=Message.DeliveryStatus.QUEUED,
            delivery_error=f"Attempt {attempts} failed, will retry: {reason}"[:2000],
            next_attempt_at=timezone.now() + timedelta(seconds=retry_delay_seconds(attempts)),
            delivery_updated_at=timezone.now(),
        )
        realtime_publish_updated(message)


# Sweeper -------------------------------------------------------------------------------

SWEEP_BATCH = 500


def sweep() -> dict[str, int]:
    """Re-enqueue work a lost task, a dead worker or a broker outage left behind.

    Each query reads only due rows through a partial index: O(due), not O(all).
    """
    now = timezone.now()
    stuck_after = timedelta(seconds=_conf("QUEUE_STUCK_AFTER_SECONDS"))
    # A pending event is enqueued again once it is older than QUEUE_STUCK_AFTER_SECONDS, and
    # again only after waiting half its age since: a lost task is redone within the first
    # window, while under a long backlog (its task still queued) the copies thin out instead
    # of piling onto the queue every sweep.
    pending = InboundEvent.objects.filter(status=InboundEvent.Status.PENDING, received_at__lt=now - stuck_after)
    candidates = list(pending.order_by("received_at").values_list("pk", "received_at", "swept_at")[:SWEEP_BATCH])
    stuck_inbound = [
        pk for pk, received_at, swept_at in candidates
        if swept_at is None or now - swept_at >= max(stuck_after, (now - received_at) / 2)
    ]
    if stuck_inbound:
        InboundEvent.objects.filter(pk__in=stuck_inbound).update(swept_at=now)
    for event_id in stuck_inbound:
        inbound_enqueue(event_id=event_id)
    # A reply left in "sending" by a dead worker may or may not have reached the provider: the
    # worker died between handing it over and recording the answer. Sending it again blind
    # could give the customer two copies, so it fails visibly and an agent decides (retry
    # from the timeline, or check with the customer).
    sending_since = now - timedelta(seconds=_conf("OUTBOUND_STUCK_AFTER_SECONDS"))
    interrupted = list(
        Message.objects.filter(delivery_status=Message.DeliveryStatus.SENDING, delivery_updated_at__lt=sending_since)
        .select_related("conversation")[:SWEEP_BATCH]
    )
    for message in interrupted:
        outbound_interrupted_fail(message=message, stuck_before=sending_since)
    due_outbound = list(
        Message.objects.filter(delivery_status=Message.DeliveryStatus.QUEUED, next_attempt_at__lte=now)
        .order_by("next_attempt_at").values_list("pk", flat=True)[:SWEEP_BATCH]
    )
    for message_id in due_outbound:
        outbound_enqueue(message_id=message_id)
    return {"inbound": len(stuck_inbound), "outbound": len(due_outbound), "interrupted": len(interrupted)}


INTERRUPTED_REASON = (
    "Delivery was interrupted: the worker stopped while handing this reply to the provider, so it may or may not "
    "have been sent. Retry to send it again, or check with the customer first."
)


def outbound_interrupted_fail(*, message: Message, stuck_before: datetime) -> bool:
    """Fail a reply still "sending" since before `stuck_before`; False if it moved on meanwhile."""
    with transaction.atomic():
        changed = Message.objects.filter(
            pk=message.pk, delivery_status=Message.DeliveryStatus.SENDING, delivery_updated_at__lt=stuck_before,
        ).update(delivery_status=Message.DeliveryStatus.FAILED, delivery_error=INTERRUPTED_REASON, next_attempt_at=None,
                 delivery_updated_at=timezone.now())
        if changed:
            logger.warning("reply %s: delivery interrupted by a dead worker, marked failed", message.pk)
            realtime_publish_updated(message)
    return bool(changed)


def inbound_event_retry(*, event_id: int) -> bool:
    """An operator sends a failed event through processing again (e.g. after adding the inbox)."""
    with transaction.atomic():
        changed = InboundEvent.objects.filter(pk=event_id, status=InboundEvent.Status.FAILED).update(
            status=InboundEvent.Status.PENDING, attempts=0, error=""
        )
        if changed:
            transaction.on_commit(lambda: inbound_enqueue(event_id=event_id))
    return bool(changed)
