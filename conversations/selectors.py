"""Reads of contacts, scoped to what the agent may see.

An agent sees a contact once the contact has a conversation in one of the agent's inboxes;
managers see every contact. Knowing that a customer exists is itself information, so a
contact outside the agent's inboxes is a 404, not a 403.
"""
from __future__ import annotations

import dataclasses

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ObjectDoesNotExist
from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet
from django.http import Http404

from conversations.models import Channel, Contact, ContactIdentity, Conversation, Inbox, Message
from conversations.phones import e164
from helpdesk.roles import is_manager


def contacts_for_agent(user: AbstractBaseUser) -> QuerySet[Contact]:
    qs = Contact.objects.all()
    if not is_manager(user):
        # EXISTS rather than a join: a contact with many conversations must appear once.
        in_my_inboxes = Conversation.objects.filter(contact=OuterRef("pk"), inbox__members=user)
        qs = qs.filter(Exists(in_my_inboxes))
    return qs


def contact_list(*, user: AbstractBaseUser, q: str = "") -> QuerySet[Contact]:
    """Contacts the agent may see, optionally searched by name, email or phone. One query
    per page (plus the manager check, cached per request)."""
    qs = contacts_for_agent(user)
    q = q.strip()
    if q:
        qs = qs.filter(Q(name__icontains=q) | Q(email__icontains=q) | Q(phone__icontains=q))
    return qs.order_by("-id")


def contact_get_for_agent(*, user: AbstractBaseUser, contact_id: int) -> Contact:
    """The contact with its identities (two queries), or 404 outside the agent's inboxes."""
    qs = contacts_for_agent(user).prefetch_related(
        Prefetch("identities", queryset=ContactIdentity.objects.order_by("kind", "address"))
    )
    try:
        return qs.get(pk=contact_id)
    except Contact.DoesNotExist:
        raise Http404("No such contact.") from None


def sms_recipient(conversation: Conversation) -> str:
    """The number an SMS reply goes to: the customer's latest texting number, else the contact's phone."""
    latest = (
        conversation.messages.filter(kind=Message.Kind.INBOUND, channel=Channel.SMS)
        .exclude(from_address="").order_by("-created_at", "-id").values_list("from_address", flat=True).first()
    )
    return latest or conversation.contact.phone


def sms_opt_out(phone: str) -> ContactIdentity | None:
    """The phone identity if that number has opted out of SMS (STOP), else None."""
    phone = e164(phone or "") or (phone or "").strip()
    if not phone:
        return None
    return ContactIdentity.objects.filter(kind=ContactIdentity.Kind.PHONE, address=phone, sms_opted_out_at__isnull=False).first()


# --- Reply channels ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ReplyChannel:
    """A channel the agent could answer this conversation on, and why not when unavailable."""

    channel: str
    label: str
    address: str  # where the reply would go: an email address, a phone number, the visitor
    available: bool = True
    reason: str = ""


def channel_config(inbox: Inbox, accessor: str) -> object | None:
    """The inbox's per-kind channel config (email_channel, sms_channel, webchat_channel) or None.

    Reached through the reverse one-to-one accessor so this layer never imports channels_in;
    a select_related of the accessor makes this free.
    """
    try:
        return getattr(inbox, accessor)
    except ObjectDoesNotExist:
        return None


def contact_identities(contact: Contact) -> list[ContactIdentity]:
    """The contact's identities in display order (uses a prefetch when there is one)."""
    identities = list(contact.identities.all())
    order = {kind: index for index, kind in enumerate(ContactIdentity.Kind.values)}
    return sorted(identities, key=lambda i: (order.get(i.kind, 99), i.address))


def conversation_visitors(conversation: Conversation) -> list:
    """The web chat visitors of the conversation (channels_in.Visitor rows), newest first."""
    return list(conversation.visitors.order_by("-last_seen_at", "-id"))


def reply_channels(conversation: Conversation, *, identities: list[ContactIdentity] | None = None,
                   visitors: list | None = None) -> list[ReplyChannel]:
    """The channels an agent can answer this conversation on, the default first.

    email: the inbox has an EmailChannel and the contact an email address; sms: the inbox has
    an SmsChannel and the contact a phone identity (listed but unavailable, with the reason,
    when that number opted out); webchat: the inbox has a WebChatChannel and the conversation
    a visitor. The default is the channel of the latest customer message when it is available,
    else the first available one; unavailable channels come last.
    """
    inbox, contact = conversation.inbox, conversation.contact
    identities = contact_identities(contact) if identities is None else identities
    found: list[ReplyChannel] = []
    if channel_config(inbox, "email_channel") is not None:
        email = next((i.address for i in identities if i.kind == ContactIdentity.Kind.EMAIL), "") or contact.email
        if email:
            found.append(ReplyChannel(Channel.EMAIL, Channel.EMAIL.label, email))
    if channel_config(inbox, "sms_channel") is not None:
        phones = [i.address for i in identities if i.kind == ContactIdentity.Kind.PHONE]
        if phones:
            recipient = sms_recipient(conversation) or phones[0]
            opted_out = sms_opt_out(recipient)
            if opted_out is None:
                found.append(ReplyChannel(Channel.SMS, Channel.SMS.label, recipient))
            else:
                from conversations.services import sms_opt_out_reason  # services import this module

                found.append(ReplyChannel(Channel.SMS, Channel.SMS.label, recipient, available=False,
                                          reason=sms_opt_out_reason(opted_out)))
    if channel_config(inbox, "webchat_channel") is not None:
        visitors = conversation_visitors(conversation) if visitors is None else visitors
        if visitors:
            found.append(ReplyChannel(Channel.WEBCHAT, Channel.WEBCHAT.label, visitors[0].name or "Web chat visitor"))
    latest = (
        conversation.messages.filter(kind=Message.Kind.INBOUND).order_by("-created_at", "-id")
        .values_list("channel", flat=True).first()
    ) if found else None
    default = next((c for c in found if c.available and c.channel == latest), None) or next((c for c in found if c.available), None)
    # The default first, then what else works, then what does not (with its reason).
    return sorted(found, key=lambda c: (c is not default, not c.available))


# Merges leave the merged row in place, pointing at the survivor; a survivor may itself be
# merged later, so links are followed (a few hops at most, bounded against a cycle).
_MERGE_HOPS = 10


def conversation_survivor(conversation: Conversation | None) -> Conversation | None:
    """Where a conversation's messages live now: itself, or what it was merged into."""
    for _ in range(_MERGE_HOPS):
        if conversation is None or conversation.merged_into_id is None:
            return conversation
        conversation = Conversation.objects.get(pk=conversation.merged_into_id)
    return conversation


def contact_survivor(contact: Contact) -> Contact:
    """The contact a merged contact lives on as (itself when never merged)."""
    for _ in range(_MERGE_HOPS):
        if contact.merged_into_id is None:
            return contact
        contact = Contact.objects.get(pk=contact.merged_into_id)
    return contact
