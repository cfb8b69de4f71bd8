"""Reads of contacts, scoped to what the agent may see.

An agent sees a contact once the contact has a conversation in one of the agent's inboxes;
managers see every contact. Knowing that a customer exists is itself information, so a
contact outside the agent's inboxes is a 404, not a 403.
"""
from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet
from django.http import Http404

from conversations.models import Contact, ContactIdentity, Conversation
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
    from conversations.models import Channel, Message

    latest = (
        conversation.messages.filter(kind=Message.Kind.INBOUND, channel=Channel.SMS)
        .exclude(from_address="").order_by("-created_at", "-id").values_list("from_address", flat=True).first()
    )
    return latest or conversation.contact.phone


def sms_opt_out(phone: str) -> ContactIdentity | None:
    """The phone identity if that number has opted out of SMS (STOP), else None."""
    if not phone:
        return None
    return ContactIdentity.objects.filter(kind=ContactIdentity.Kind.PHONE, address=phone, sms_opted_out_at__isnull=False).first()
