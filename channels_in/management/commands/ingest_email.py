"""Read one RFC 822 message, or an mbox, from stdin: the MTA pipe into the desk.

Postfix example (master.cf):  helpdesk unix - n n - - pipe
  flags=Rq user=helpdesk argv=/srv/desk/.venv/bin/python /srv/desk/manage.py ingest_email --recipient ${recipient}

Exit codes follow sysexits so the MTA does the right thing: 0 stored, 65 unreadable
input (bounce), 75 temporary failure (the MTA keeps the mail and retries).
"""
from __future__ import annotations

import email
import email.policy
import hashlib
import mailbox
import sys
import tempfile

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from channels_in.services import inbound_event_process, inbound_event_record

EX_DATAERR = 65
EX_TEMPFAIL = 75


def split_messages(data: bytes) -> list[bytes]:
    """One message, or every message of an mbox (detected by its leading "From " line)."""
    if not data.startswith(b"From "):
        return [data]
    with tempfile.NamedTemporaryFile(suffix=".mbox") as handle:
        handle.write(data)
        handle.flush()
        box = mailbox.mbox(handle.name, create=False)
        try:
            return [box.get_bytes(key) for key in box.keys()]
        finally:
            box.close()


def event_id_for(raw: bytes) -> str:
    """The Message-ID when there is one, so a re-piped message is the same event."""
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    message_id = str(message.get("Message-ID", "") or "").strip()
    return message_id or "sha256:" + hashlib.sha256(raw).hexdigest()


class Command(BaseCommand):
    help = "Store email read from stdin (one RFC 822 message or an mbox) as inbound events."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--recipient", default="", help="Envelope recipient (e.g. Postfix ${recipient}).")
        parser.add_argument("--now", action="store_true", help="Also process each message here instead of leaving it to the workers.")

    def handle(self, *args: object, recipient: str, now: bool, **options: object) -> None:
        data = sys.stdin.buffer.read()
        if not data.strip():
            self.stderr.write("No message on stdin.")
            sys.exit(EX_DATAERR)
        try:
            messages = split_messages(data)
        except Exception as err:  # noqa: BLE001 - report and let the MTA bounce it
            raise CommandError(f"Unreadable mbox: {err}", returncode=EX_DATAERR) from err
        stored = duplicates = 0
        try:
            for raw in messages:
                event, created = inbound_event_record(provider="mta", event_id=event_id_for(raw), raw=raw, recipient=recipient)
                stored += created
                duplicates += not created
                if now and created:
                    inbound_event_process(event_id=event.pk)
        except DatabaseError as err:
            self.stderr.write(f"Database unavailable, try again later: {err}")
            sys.exit(EX_TEMPFAIL)
        self.stdout.write(f"stored {stored} message(s), {duplicates} already known")
