"""Django-side steps of the benchmark, run as `python -m bench.desk <step>` with the desk's env.

  setup                  one email inbox (support@acme.test), a superuser and a logged-in session
  fill --conversations N N conversations with their tickets, contacts, identities and 1-3 messages

Each step prints one JSON object on stdout. The fill writes rows directly (COPY on PostgreSQL,
executemany on SQLite) with every column prepared by the model's own fields, so defaults of
columns added later are still honoured.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from datetime import datetime, timedelta, timezone

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "helpdesk.settings.base")

import django  # noqa: E402

django.setup()

from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model  # noqa: E402
from django.contrib.sessions.backends.db import SessionStore  # noqa: E402
from django.core.management.color import no_style  # noqa: E402
from django.db import connection, models, transaction  # noqa: E402

from channels_in.models import EmailChannel, InboundEvent  # noqa: E402
from conversations.models import Contact, ContactIdentity, Conversation, Inbox, Message  # noqa: E402
from tickets.models import Ticket  # noqa: E402

SUPPORT_ADDRESS = "support@acme.test"
BATCH = 5000


def setup() -> dict:
    with transaction.atomic():
        inbox = Inbox.objects.create(name="Support", kind="email")
        EmailChannel.objects.create(inbox=inbox, address=SUPPORT_ADDRESS, from_name="Acme Support")
        User = get_user_model()
        user = User.objects.create_superuser(username="bench-agent", email="agent@acme.test", password="bench-password-123")
        inbox.members.add(user)
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.save()
    return {
        "inbox_id": inbox.pk,
        "user_id": user.pk,
        "session_key": session.session_key,
        "tables": {"message": Message._meta.db_table, "inbound_event": InboundEvent._meta.db_table,
                   "conversation": Conversation._meta.db_table},
    }


def sla_policy_add() -> None:
    """The SLA most teams run, on every conversation: a first response within an hour and a
    resolution within a day, for every priority, in calendar time."""
    from tickets.models import SlaMetric, SlaPolicy, SlaTarget, Ticket

    policy = SlaPolicy.objects.create(name="Standard")
    SlaTarget.objects.bulk_create([
        SlaTarget(policy=policy, metric=metric, priority=priority, minutes=minutes, business_hours=False)
        for metric, minutes in ((SlaMetric.FIRST_RESPONSE, 60), (SlaMetric.RESOLUTION, 24 * 60))
        for priority in Ticket.Priority.values
    ])


def _columns(model: type[models.Model]) -> list[models.Field]:
    return list(model._meta.local_concrete_fields)


_PLAIN = (str, int, bool, type(None))
_defaults: dict[type[models.Model], list[tuple[models.Field, bool, object]]] = {}


def _plan(model: type[models.Model]) -> list[tuple[models.Field, bool, object]]:
    """Per column: (field, has a fixed prepared default, that default)."""
    if model not in _defaults:
        plan = []
        for f in _columns(model):
            if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
                plan.append((f, False, None))  # the row's own time
            elif f.has_default() and not callable(f.default):
                plan.append((f, True, f.get_db_prep_save(f.get_default(), connection)))
            elif f.has_default():
                plan.append((f, False, None))  # a callable default: called per row
            else:
                blank = "" if isinstance(f, (models.CharField, models.TextField)) and not f.null else None
                plan.append((f, True, blank))
        _defaults[model] = plan
    return _defaults[model]


def _prepared(model: type[models.Model], values: dict, now: datetime) -> tuple:
    row = []
    for f, fixed, default in _plan(model):
        if f.attname in values:
            value = values[f.attname]
        elif fixed:
            row.append(default)
            continue
        elif getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
            value = now
        else:
            value = f.get_default()
        # Plain values need no conversion; dates, JSON and the like go through the field.
        if isinstance(value, _PLAIN):
            row.append(value)
        elif isinstance(value, datetime) and value.tzinfo is timezone.utc:
            row.append(_datetime(value))
        else:
            row.append(f.get_db_prep_save(value, connection))
    return tuple(row)


def _datetime(value: datetime) -> object:
    """What DateTimeField.get_db_prep_save gives for an aware UTC datetime, without its cost."""
    if connection.vendor == "sqlite":
        return str(value.replace(tzinfo=None))  # Django stores naive UTC text on SQLite
    return value


class Writer:
    """Buffers rows per table and writes them in batches."""

    def __init__(self) -> None:
        self.rows: dict[type[models.Model], list[tuple]] = {}
        self.counts: dict[str, int] = {}

    def add(self, model: type[models.Model], values: dict, now: datetime) -> None:
        batch = self.rows.setdefault(model, [])
        batch.append(_prepared(model, values, now))
        if len(batch) >= BATCH:
            self.flush(model)

    def flush(self, model: type[models.Model] | None = None) -> None:
        for m in [model] if model else list(self.rows):
            batch = self.rows.get(m) or []
            if batch:
                _write(m, batch)
                self.counts[m._meta.db_table] = self.counts.get(m._meta.db_table, 0) + len(batch)
                self.rows[m] = []

    def finish(self, order: list[type[models.Model]], *, sequences: list[type[models.Model]]) -> None:
        """Write what is buffered, in `order` (foreign keys first), and move the id sequences of
        `sequences` past the ids written, so the desk's own inserts continue after them."""
        for model in order:
            self.flush(model)
        with connection.cursor() as cursor:
            for sql in connection.ops.sequence_reset_sql(no_style(), sequences):
                cursor.execute(sql)


def settle() -> None:
    """A desk that grew over months, not one bulk-loaded a second ago: on PostgreSQL the
    visibility map set (no autovacuum pass during the measurement) and the load's dirty pages
    on disk (no checkpoint, with its full-page writes, in the middle of it); statistics on both."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("VACUUM ANALYZE")
            cursor.execute("CHECKPOINT")
        else:
            cursor.execute("ANALYZE")
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _write(model: type[models.Model], rows: list[tuple]) -> None:
    qn = connection.ops.quote_name
    table = qn(model._meta.db_table)
    cols = ", ".join(qn(f.column) for f in _columns(model))
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            marks = ", ".join(["%s"] * len(_columns(model)))
            cursor.executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks})", rows)


def _next_id(model: type[models.Model]) -> int:
    return (model.objects.aggregate(m=models.Max("pk"))["m"] or 0) + 1


STATUSES = [  # roughly a live desk: most tickets done, a working set open
    (Ticket.Status.NEW, 8), (Ticket.Status.OPEN, 12), (Ticket.Status.PENDING, 5), (Ticket.Status.ON_HOLD, 2),
    (Ticket.Status.SOLVED, 48), (Ticket.Status.CLOSED, 25),
]
WORDS = ("printer invoice refund login password shipping order delayed broken screen account upgrade plan billing "
         "error page crash export report thanks please help urgent question support team soon").split()


def _texts(rng: random.Random, count: int, low: int, high: int) -> list[str]:
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high))).capitalize() + "." for _ in range(count)]


def fill(*, conversations: int, seed: int) -> dict:
    started = time.monotonic()
    rng = random.Random(seed)
    inbox = Inbox.objects.get(email_channel__address=SUPPORT_ADDRESS)
    agent = get_user_model().objects.filter(is_superuser=True).order_by("pk").first()
    status_names = [s for s, _ in STATUSES]
    status_weights = [w for _, w in STATUSES]
    contact_id, identity_id, conv_id, message_id = (_next_id(m) for m in (Contact, ContactIdentity, Conversation, Message))
    end = datetime.now(timezone.utc) - timedelta(minutes=5)
    span = 365 * 86400
    writer = Writer()
    subjects = [t[:-1] for t in _texts(rng, 997, 3, 7)]
    bodies = _texts(rng, 2003, 20, 60)
    with transaction.atomic():
        for n in range(conversations):
            created = end - timedelta(seconds=span * (conversations - n) / max(conversations, 1))
            address = f"customer{contact_id}@fill.example.org"
            writer.add(Contact, {"id": contact_id, "name": f"Customer {contact_id}", "email": address, "created_at": created}, created)
            writer.add(ContactIdentity, {"id": identity_id, "contact_id": contact_id, "kind": ContactIdentity.Kind.EMAIL,
                                         "address": address, "created_at": created}, created)
            subject = subjects[n % len(subjects)]
            count = rng.randint(1, 3)
            when = created
            last_kind = Message.Kind.INBOUND
            last_text = ""
            previous_rfc = ""
            for k in range(count):
                kind = Message.Kind.INBOUND if k % 2 == 0 else Message.Kind.OUTBOUND
                rfc = f"fill-{conv_id}-{k}@{'mail.fill.example.org' if kind == Message.Kind.INBOUND else 'acme.test'}"
                text = rng.choice(bodies)
                values = {
                    "id": message_id, "conversation_id": conv_id, "kind": kind, "channel": "email",
                    "from_address": address if kind == Message.Kind.INBOUND else SUPPORT_ADDRESS,
                    "to_address": SUPPORT_ADDRESS if kind == Message.Kind.INBOUND else address,
                    "subject": subject if k == 0 else f"Re: {subject}", "text": text, "text_display": text,
                    "rfc_message_id": rfc, "in_reply_to": f"<{previous_rfc}>" if previous_rfc else "",
                    "thread_rule": Message.ThreadRule.NEW if k == 0 else (
                        Message.ThreadRule.IN_REPLY_TO if kind == Message.Kind.INBOUND else Message.ThreadRule.AGENT),
                    "created_at": when,
                }
                if kind == Message.Kind.INBOUND:
                    values |= {"author_contact_id": contact_id, "external_id": rfc}
                else:
                    values |= {"author_user_id": agent.pk if agent else None, "external_id": f"pm-{message_id}",
                               "delivery_status": Message.DeliveryStatus.DELIVERED, "delivery_attempts": 1,
                               "delivery_updated_at": when}
                writer.add(Message, values, when)
                last_kind, last_text, previous_rfc = kind, text, rfc
                message_id += 1
                when += timedelta(minutes=rng.randint(5, 600))
            last_at = when - timedelta(minutes=1)
            # Messages may reach the table before their conversation: Django's foreign keys
            # are DEFERRABLE INITIALLY DEFERRED on both engines and this is one transaction.
            writer.add(Conversation, {
                "id": conv_id, "inbox_id": inbox.pk, "contact_id": contact_id, "subject": subject, "created_at": created,
                "last_message_at": last_at, "last_message_preview": last_text[:200], "last_message_channel": "email",
                "waiting_since": last_at if last_kind == Message.Kind.INBOUND else None, "message_count": count,
            }, created)
            status = rng.choices(status_names, status_weights)[0]
            writer.add(Ticket, {
                "conversation_id": conv_id, "status": status,
                "assignee_id": agent.pk if agent and status != Ticket.Status.NEW and rng.random() < 0.7 else None,
                "created_at": created, "updated_at": last_at,
                "solved_at": last_at if status in (Ticket.Status.SOLVED, Ticket.Status.CLOSED) else None,
            }, created)
            contact_id += 1
            identity_id += 1
            conv_id += 1
        writer.finish([Contact, ContactIdentity, Conversation, Ticket, Message],
                      sequences=[Contact, ContactIdentity, Conversation, Message])
    settle()
    return {"conversations": conversations, "rows": writer.counts, "seconds": round(time.monotonic() - started, 2)}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench.desk")
    sub = parser.add_subparsers(dest="step", required=True)
    sub.add_parser("setup")
    fill_parser = sub.add_parser("fill")
    fill_parser.add_argument("--conversations", type=int, required=True)
    fill_parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.step == "setup":
        result = setup()
    else:
        result = fill(conversations=args.conversations, seed=args.seed)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
