"""Which conversation an incoming email belongs to, and why.

Order (RELIABILITY.md §3): In-Reply-To, then References, against every Message-ID we
stored or sent and the ids providers substituted; then our signed reply address; then a
`[#123]` subject tag, only when the sender already takes part in that conversation.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from django.conf import settings
from django.utils.crypto import constant_time_compare, salted_hmac

from conversations.models import Channel, Conversation, Inbox, Message

_MSGID = re.compile(r"<([^<>\s]+)>")
_SUBJECT_TAG = re.compile(r"\[#(\d{1,18})\]")
_TOKEN = re.compile(r"^c(\d{1,18})\.([0-9a-f]{16})$")
_SALT = "helpdesk.reply-token"


@dataclass(frozen=True)
class ThreadMatch:
    conversation: Conversation | None
    rule: str


def parse_message_ids(header: str) -> list[str]:
    """Message-IDs in a header, without angle brackets, in order, deduplicated."""
    found = _MSGID.findall(header or "")
    if not found and header and "@" in header and " " not in header.strip():
        found = [header.strip()]
    return list(dict.fromkeys(found))


def reply_token(conversation_id: int) -> str:
    return f"c{conversation_id}.{_mac(conversation_id, settings.SECRET_KEY)}"


def _mac(conversation_id: int, secret: str) -> str:
    return salted_hmac(_SALT, str(conversation_id), secret=secret, algorithm="sha256").hexdigest()[:16]


def reply_token_conversation_id(token: str) -> int | None:
    """The conversation a signed token names, or None when the token is not ours."""
    match = _TOKEN.match(token.strip().lower())
    if not match:
        return None
    conversation_id, mac = int(match.group(1)), match.group(2)
    for secret in [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]:
        if constant_time_compare(mac, _mac(conversation_id, secret)):
            return conversation_id
    return None


def thread_find(
    *,
    inbox: Inbox,
    contact_id: int,
    in_reply_to: str,
    references: str,
    reply_tokens: list[str],
    subject: str,
) -> ThreadMatch:
    for rule, header in ((Message.ThreadRule.IN_REPLY_TO, in_reply_to), (Message.ThreadRule.REFERENCES, references)):
        # References lists the oldest first; the newest known ancestor is the best anchor.
        ids = list(reversed(parse_message_ids(header)))
        conversation = _conversation_by_message_ids(inbox, ids)
        if conversation is not None:
            return ThreadMatch(conversation, rule)
    for token in reply_tokens:
        conversation_id = reply_token_conversation_id(token)
        if conversation_id is not None:
            conversation = Conversation.objects.filter(pk=conversation_id, inbox=inbox).first()
            if conversation is not None:
                return ThreadMatch(conversation, Message.ThreadRule.REPLY_TOKEN)
    tag = _SUBJECT_TAG.search(subject or "")
    if tag:
        # A number in a subject is guessable: only a known participant may use it.
        conversation = Conversation.objects.filter(pk=int(tag.group(1)), inbox=inbox, contact_id=contact_id).first()
        if conversation is not None:
            return ThreadMatch(conversation, Message.ThreadRule.SUBJECT_TAG)
    return ThreadMatch(None, Message.ThreadRule.NEW)


def _conversation_by_message_ids(inbox: Inbox, ids: list[str]) -> Conversation | None:
    if not ids:
        return None
    # Providers like Amazon SES replace our Message-ID with <provider-id@their-domain>;
    # we stored their id as external_id at send time, so match its local part too.
    local_parts = [i.partition("@")[0] for i in ids]
    candidates = (
        Message.objects.filter(conversation__inbox=inbox, rfc_message_id__in=ids).order_by()
        .values_list("rfc_message_id", "conversation_id")
        .union(
            Message.objects.filter(conversation__inbox=inbox, channel=Channel.EMAIL, external_id__in=ids + local_parts)
            .order_by().values_list("external_id", "conversation_id")
        )
    )
    by_id = {key: conversation_id for key, conversation_id in candidates}
    for message_id in ids:
        conversation_id = by_id.get(message_id) or by_id.get(message_id.partition("@")[0])
        if conversation_id:
            return Conversation.objects.get(pk=conversation_id)
    return None
