"""Requests exactly as the email providers send them (formats per their docs and anymail's)."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from datetime import datetime, timezone

WEBHOOK_AUTH = "hook:secret-pass"  # ANYMAIL["WEBHOOK_SECRET"] in helpdesk.settings.test
MAILGUN_SIGNING_KEY = "mg-signing-key"


def basic_auth_header(credentials: str = WEBHOOK_AUTH) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


def build_email(
    *,
    sender: str = "Jane Customer <jane@example.org>",
    to: str = "support@acme.test",
    subject: str = "Printer on fire",
    text: str = "Hello, my printer is on fire. Please help.",
    html: str | None = None,
    message_id: str | None = None,
    in_reply_to: str | None = None,
    references: str | None = None,
    attachments: list[tuple[str, str, bytes]] = (),
    inline_images: list[tuple[str, bytes]] = (),
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.now(timezone.utc))
    msg["Message-ID"] = message_id or make_msgid(domain="mail.example.org")
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references:
        msg["References"] = references
    msg.set_content(text)
    if html is not None:
        msg.add_alternative(html, subtype="html")
        html_part = msg.get_payload()[-1]
        for cid, data in inline_images:
            html_part.add_related(data, maintype="image", subtype="png", cid=f"<{cid}>")
    for filename, content_type, data in attachments:
        maintype, subtype = content_type.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg


def mailgun_signature(timestamp: str, token: str, key: str = MAILGUN_SIGNING_KEY) -> str:
    return hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()


def mailgun_mime_post(message: EmailMessage, *, recipient: str = "support@acme.test", timestamp: int | None = None,
                      token: str | None = None, key: str = MAILGUN_SIGNING_KEY) -> dict[str, str]:
    """Form fields of Mailgun's forward() to a URL containing "mime" (raw MIME route)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    token = token or uuid.uuid4().hex + uuid.uuid4().hex[:18]
    return {
        "recipient": recipient,
        "sender": str(message["From"]).split("<")[-1].rstrip(">"),
        "from": str(message["From"]),
        "subject": str(message["Subject"]),
        "body-mime": message.as_string(),
        "timestamp": ts,
        "token": token,
        "signature": mailgun_signature(ts, token, key),
    }


def postmark_inbound_json(message: EmailMessage, *, recipient: str = "support@acme.test", postmark_id: str | None = None,
                          stripped: str | None = None) -> dict:
    """Postmark's inbound webhook JSON (parsed form, as Postmark posts without RawEmail)."""
    body = message.get_body(("plain",))
    html = message.get_body(("html",))
    sender = str(message["From"])
    name, _, addr = sender.rpartition("<")
    attachments = [
        {
            "Name": part.get_filename(),
            "Content": base64.b64encode(part.get_content() if isinstance(part.get_content(), bytes) else part.get_content().encode()).decode(),
            "ContentType": part.get_content_type(),
            "ContentLength": len(part.get_payload(decode=True)),
            "ContentID": "",
        }
        for part in message.iter_attachments()
    ]
    headers = [{"Name": "Return-Path", "Value": f"<{addr.rstrip('>')}>"}]
    for key in ("Message-ID", "In-Reply-To", "References", "Date"):
        if message[key]:
            headers.append({"Name": key, "Value": str(message[key])})
    return {
        "FromName": name.strip().strip('"'),
        "MessageStream": "inbound",
        "From": addr.rstrip(">"),
        "FromFull": {"Email": addr.rstrip(">"), "Name": name.strip().strip('"'), "MailboxHash": ""},
        "To": str(message["To"]),
        "ToFull": [{"Email": recipient, "Name": "", "MailboxHash": recipient.partition("+")[2].partition("@")[0]}],
        "Cc": "",
        "CcFull": [],
        "Bcc": "",
        "BccFull": [],
        "OriginalRecipient": recipient,
        "Subject": str(message["Subject"]),
        "MessageID": postmark_id or str(uuid.uuid4()),
        "ReplyTo": "",
        "MailboxHash": recipient.partition("+")[2].partition("@")[0],
        "Date": str(message["Date"]),
        "TextBody": body.get_content() if body else "",
        "HtmlBody": html.get_content() if html else "",
        "StrippedTextReply": stripped or "",
        "Tag": "",
        "Headers": headers,
        "Attachments": attachments,
    }


def ses_inbound_sns(message: EmailMessage, *, recipient: str = "support@acme.test", sns_id: str | None = None,
                    ses_id: str | None = None) -> tuple[dict, dict[str, str]]:
    """An SNS Notification carrying an SES receipt (SNS action, BASE64), and its headers."""
    sns_id = sns_id or str(uuid.uuid4())
    ses_event = {
        "notificationType": "Received",
        "mail": {
            "timestamp": datetime.now(timezone.utc).isoformat(),
            "source": str(message["From"]).split("<")[-1].rstrip(">"),
            "messageId": ses_id or uuid.uuid4().hex,
            "destination": [recipient],
            "headersTruncated": False,
            "commonHeaders": {"subject": str(message["Subject"])},
        },
        "receipt": {
            "timestamp": datetime.now(timezone.utc).isoformat(),
            "recipients": [recipient],
            "spamVerdict": {"status": "PASS"},
            "virusVerdict": {"status": "PASS"},
            "spfVerdict": {"status": "PASS"},
            "dkimVerdict": {"status": "PASS"},
            "dmarcVerdict": {"status": "PASS"},
            "action": {"type": "SNS", "topicArn": "arn:aws:sns:us-east-1:123456789012:inbound", "encoding": "BASE64"},
        },
        "content": base64.b64encode(message.as_bytes()).decode(),
    }
    body = {
        "Type": "Notification",
        "MessageId": sns_id,
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:inbound",
        "Subject": "Amazon SES Email Receipt Notification",
        "Message": json.dumps(ses_event),
        "Timestamp": datetime.now(timezone.utc).isoformat(),
        "SignatureVersion": "1",
        "Signature": "EXAMPLE",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-example.pem",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
    }
    headers = {"HTTP_X_AMZ_SNS_MESSAGE_TYPE": "Notification", "HTTP_X_AMZ_SNS_MESSAGE_ID": sns_id}
    return body, headers
