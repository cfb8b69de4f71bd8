"""Django-side steps of the load generator, run as `python -m bench.loadgen_desk <step>` with the desk's env.

  setup --agents N       the desk under load: bench.desk's email inbox and superuser, an SMS inbox
                         on a Twilio number (its auth token signs the webhooks), a web chat inbox
                         (the bench's page origin allowed, no pre-chat form), N more agents in
                         every inbox; a logged-in session per agent; with --sla, an SLA policy
                         (bench.desk.sla_policy_add) on every conversation
  dataset --conversations C --messages M
                         C conversations with M messages in all over those three inboxes, written
                         straight into the tables (bench.desk's Writer: COPY on PostgreSQL); on
                         PostgreSQL the search indexes are dropped for the load and rebuilt after

Each step prints one JSON object on stdout.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import random
import secrets
import sys
import time
from datetime import UTC, datetime, timedelta

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "helpdesk.settings.base")

import django

django.setup()

from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.db import SessionStore
from django.db import connection, transaction

from bench import desk
from bench.widget import BENCH_ORIGIN as WIDGET_ORIGIN
from channels_in.models import EmailChannel, InboundEvent, SmsChannel, WebChatChannel
from conversations.models import Contact, ContactIdentity, Conversation, Inbox, Message
from tickets.models import Ticket

DESK_NUMBER = "+14155550100"


def _session(user) -> str:
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.save()
    return session.session_key


def setup(*, agents: int, sla: bool = False) -> dict:
    base = desk.setup()
    if sla:
        desk.sla_policy_add()
    User = get_user_model()
    with transaction.atomic():
        email_inbox = Inbox.objects.get(pk=base["inbox_id"])
        sms_inbox = Inbox.objects.create(name="SMS", kind="sms")
        sms = SmsChannel.objects.create(inbox=sms_inbox, account_sid="AC" + secrets.token_hex(16),
                                        auth_token=secrets.token_hex(16), phone_number=DESK_NUMBER)
        chat_inbox = Inbox.objects.create(name="Web chat", kind="webchat")
        chat = WebChatChannel.objects.create(inbox=chat_inbox, allowed_origins=WIDGET_ORIGIN, pre_chat_form=False)
        superuser = User.objects.get(pk=base["user_id"])
        for inbox in (sms_inbox, chat_inbox):
            inbox.members.add(superuser)
        extra = []
        for n in range(agents):
            agent = User.objects.create_user(username=f"loadgen-agent-{n}", email=f"agent{n}@acme.test",
                                             password=secrets.token_urlsafe(12), first_name=f"Agent {n}")
            for inbox in (email_inbox, sms_inbox, chat_inbox):
                inbox.members.add(agent)
            extra.append(agent)
    return {
        "sessions": [base["session_key"], *(_session(a) for a in extra)],
        "email": {"inbox_id": email_inbox.pk, "address": desk.SUPPORT_ADDRESS},
        "sms": {"inbox_id": sms_inbox.pk, "uuid": str(sms.uuid), "auth_token": sms.auth_token,
                "account_sid": sms.account_sid, "number": sms.phone_number},
        "chat": {"inbox_id": chat_inbox.pk, "public_key": chat.public_key, "origin": WIDGET_ORIGIN},
        "tables": {"message": Message._meta.db_table, "inbound_event": InboundEvent._meta.db_table},
    }


WORDS = ["order", "please", "help", "thanks", "hello", "issue", "account", "problem", "support", "update", "email", "payment", "refund", "invoice", "shipping", "delivery", "tracking", "number", "password", "login", "error", "delayed", "broken", "package", "item", "return", "replace", "printer", "screen", "cracked", "upgrade", "plan", "billing", "export", "report", "crash", "urgent", "question", "soon", "today", "week"]


def _counts(rng: random.Random, conversations: int, messages: int) -> list[int]:
    """Messages per conversation around the mean (1 .. 2·mean-1), summing to exactly `messages`."""
    mean = messages / conversations
    counts = [max(1, round(rng.triangular(1, max(1.0, 2 * mean - 1), mean))) for _ in range(conversations)]
    diff = messages - sum(counts)
    while diff:
        i = rng.randrange(conversations)
        if diff > 0:
            counts[i] += 1
            diff -= 1
        elif counts[i] > 1:
            counts[i] -= 1
            diff += 1
    return counts


def dataset(*, conversations: int, messages: int, seed: int) -> dict:
    """Fill the desk made by `setup` with a year of history in its three inboxes."""
    if messages < conversations:
        raise SystemExit("--messages must be at least --conversations (one message each)")
    started = time.monotonic()
    rng = random.Random(seed)
    email_channel = EmailChannel.objects.select_related("inbox").order_by("pk").first()
    sms_channel = SmsChannel.objects.select_related("inbox").order_by("pk").first()
    chat_channel = WebChatChannel.objects.select_related("inbox").order_by("pk").first()
    inboxes = []
    if email_channel is not None:
        inboxes.append((email_channel.inbox, "email", email_channel.address))
    if sms_channel is not None:
        inboxes.append((sms_channel.inbox, "sms", sms_channel.phone_number))
    if chat_channel is not None:
        inboxes.append((chat_channel.inbox, "webchat", ""))
    if not inboxes:
        raise SystemExit("no email, SMS or web chat inbox to fill: run the setup step (or make the desk's inboxes) first")
    agents = list(get_user_model().objects.order_by("pk")[:20])
    counts = _counts(rng, conversations, messages)
    pool = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 40))).capitalize() + "." for _ in range(5000)]
    statuses = [(s, w) for s, w in desk.STATUSES]
    status_names, status_weights = [s for s, _ in statuses], [w for _, w in statuses]
    contact_id, identity_id, conv_id, message_id = (desk._next_id(m) for m in (Contact, ContactIdentity, Conversation, Message))
    end = datetime.now(UTC) - timedelta(minutes=10)
    span = 365 * 86400
    writer = desk.Writer()
    # Bulk load, then index once (as a restore does): the GIN search indexes would otherwise
    # be updated per row.
    search = importlib.import_module("bench.list_search")
    indexes = search._postgres_indexes_drop()
    load_started = time.monotonic()
    with transaction.atomic():
        for n in range(conversations):
            created = end - timedelta(seconds=span * (conversations - n) / conversations)
            inbox, channel, desk_address = inboxes[n % len(inboxes)]
            if channel == "email":
                address = f"customer{contact_id}@dataset.example.org"
                contact = {"email": address}
                identity = (ContactIdentity.Kind.EMAIL, address)
            elif channel == "sms":
                address = f"+1628{contact_id:07d}"
                contact = {"phone": address}
                identity = (ContactIdentity.Kind.PHONE, address)
            else:
                address, contact, identity = "", {}, None
            writer.add(Contact, {"id": contact_id, "name": f"Customer {contact_id}", "created_at": created, **contact}, created)
            if identity is not None:
                writer.add(ContactIdentity, {"id": identity_id, "contact_id": contact_id, "kind": identity[0],
                                             "address": identity[1], "created_at": created}, created)
                identity_id += 1
            subject = rng.choice(pool)[:80] if channel == "email" else ""
            when = created
            waiting_since = None
            count = counts[n]
            for k in range(count):
                inbound = k % 2 == 0
                text = rng.choice(pool)
                values = {"id": message_id, "conversation_id": conv_id, "kind": "inbound" if inbound else "outbound",
                          "channel": channel, "text": text, "text_display": text, "created_at": when,
                          "subject": subject if k == 0 else (f"Re: {subject}" if subject else "")}
                if inbound:
                    values |= {"author_contact_id": contact_id, "from_address": address, "to_address": desk_address,
                               "external_id": f"dataset-{message_id}"}
                    waiting_since = waiting_since or when
                else:
                    values |= {"author_user_id": rng.choice(agents).pk if agents else None, "from_address": desk_address,
                               "to_address": address, "delivery_status": "delivered", "delivery_attempts": 1,
                               "delivery_updated_at": when}
                    waiting_since = None
                writer.add(Message, values, when)
                message_id += 1
                last_at, last_text = when, text
                when += timedelta(minutes=rng.randint(2, 300))
            status = rng.choices(status_names, status_weights)[0]
            is_open = status in ("new", "open", "pending", "on_hold")
            writer.add(Conversation, {"id": conv_id, "inbox_id": inbox.pk, "contact_id": contact_id, "subject": subject,
                                      "created_at": created, "last_message_at": last_at, "last_message_preview": last_text[:200],
                                      "last_message_channel": channel, "message_count": count,
                                      "waiting_since": waiting_since if is_open else None}, created)
            writer.add(Ticket, {"conversation_id": conv_id, "status": status, "channel": channel,
                                "assignee_id": rng.choice(agents).pk if agents and status != "new" and rng.random() < 0.7 else None,
                                "created_at": created, "updated_at": last_at, "solved_at": None if is_open else last_at}, created)
            contact_id += 1
            conv_id += 1
        writer.finish([Contact, ContactIdentity, Conversation, Ticket, Message],
                      sequences=[Contact, ContactIdentity, Conversation, Message])
    load_seconds = time.monotonic() - load_started
    index_seconds = search._postgres_indexes_create(indexes)
    desk.settle()
    return {"conversations": conversations, "messages": messages, "rows": writer.counts, "db": connection.vendor,
            "load_seconds": round(load_seconds, 1), "search_index_build_seconds": index_seconds,
            "seconds": round(time.monotonic() - started, 1)}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench.loadgen_desk")
    sub = parser.add_subparsers(dest="step", required=True)
    setup_parser = sub.add_parser("setup")
    setup_parser.add_argument("--agents", type=int, default=1)
    setup_parser.add_argument("--sla", action="store_true", help="an SLA policy on every conversation")
    data_parser = sub.add_parser("dataset")
    data_parser.add_argument("--conversations", type=int, required=True)
    data_parser.add_argument("--messages", type=int, required=True)
    data_parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.step == "setup":
        result = setup(agents=args.agents, sla=args.sla)
    else:
        result = dataset(conversations=args.conversations, messages=args.messages, seed=args.seed)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
