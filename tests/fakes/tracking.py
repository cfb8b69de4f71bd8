"""Delivery-tracking webhooks exactly as Postmark and Mailgun post them.

Postmark: https://postmarkapp.com/developer/webhooks/delivery-webhook and .../bounce-webhook
(JSON, HTTP basic auth). Mailgun: the JSON "event-data" webhooks, signed with HMAC-SHA256 of
timestamp+token (https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/).
"""
from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone

from tests.providers import MAILGUN_SIGNING_KEY, mailgun_signature


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")


def postmark_delivery(*, message_id: str, recipient: str, metadata: dict | None = None) -> dict:
    return {
        "RecordType": "Delivery",
        "ServerID": 23,
        "MessageStream": "outbound",
        "MessageID": message_id,
        "Recipient": recipient,
        "Tag": "",
        "DeliveredAt": _now(),
        "Details": "smtp;250 2.0.0 OK  1573133437 x3si1112537wrq.299 - gsmtp",
        "Metadata": metadata or {},
    }


def postmark_bounce(*, message_id: str, recipient: str, metadata: dict | None = None, kind: str = "HardBounce") -> dict:
    return {
        "RecordType": "Bounce",
        "MessageStream": "outbound",
        "ID": 4323372036854775807,
        "Type": kind,
        "TypeCode": 1,
        "Name": "Hard bounce",
        "Tag": "",
        "MessageID": message_id,
        "Metadata": metadata or {},
        "ServerID": 23,
        "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        "Email": recipient,
        "From": "support@acme.test",
        "BouncedAt": _now(),
        "DumpAvailable": True,
        "Inactive": True,
        "CanActivate": True,
        "Subject": "Re: Printer on fire",
        "Content": "",
    }


def mailgun_event(*, event: str, message_id: str, recipient: str, user_variables: dict | None = None,
                  key: str = MAILGUN_SIGNING_KEY, **fields: object) -> dict:
    """One Mailgun tracking webhook body (Mailgun reports the message-id without <>)."""
    timestamp, token = str(int(time.time())), uuid.uuid4().hex + uuid.uuid4().hex[:18]
    return {
        "signature": {"timestamp": timestamp, "token": token, "signature": mailgun_signature(timestamp, token, key)},
        "event-data": {
            "id": uuid.uuid4().hex[:22],
            "timestamp": time.time(),
            "log-level": "info",
            "event": event,
            "recipient": recipient,
            "recipient-domain": recipient.partition("@")[2],
            "tags": [],
            "envelope": {"sender": "support@acme.test", "transport": "smtp", "targets": recipient},
            "message": {"headers": {"to": recipient, "message-id": message_id.strip("<>"), "from": "support@acme.test",
                                    "subject": "Re: Printer on fire"}, "attachments": [], "size": 1024},
            "user-variables": user_variables or {},
            "flags": {"is-routed": False, "is-authenticated": True, "is-system-test": False, "is-test-mode": False},
            **fields,
        },
    }
