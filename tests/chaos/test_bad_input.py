"""Malformed, forged and huge inputs against every inbound endpoint of the running stack.

DESIGN.md §6: bad input gets a clear error and changes nothing. Each request must get its
documented status with a reason in the body, and no row may be written by any of them. The
statuses are the ones the desk documents per endpoint: anymail's views answer a refused
signature or secret with 400 and the reason (Amazon SNS gets its 401 challenge first),
Twilio's with 403, a body over WEBHOOK_MAX_BODY_BYTES 413, an attachment over
ATTACHMENT_MAX_BYTES 413 (the chat widget) or a notice on the stored mail (email: the
rest of the message is kept).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from urllib.parse import urlencode

import pytest

from channels_in.models import InboundEvent, Visitor
from conversations.models import Attachment, Contact, Conversation, Message
from tests.channels_in.sms_helpers import inbound_params, sign
from tests.chaos.checks import check_after_fault, wait_in_timeline
from tests.chaos.stack import ATTACHMENT_MAX_BYTES, MAILGUN_SIGNING_KEY, WEBHOOK_MAX_BODY_BYTES
from tests.chaos.traffic import POSTMARK_INBOUND, POSTMARK_TRACKING, SUPPORT, Inbound, session
from tests.fakes.tracking import mailgun_event
from tests.providers import basic_auth_header, build_email, mailgun_mime_post, postmark_inbound_json, ses_inbound_sns

pytestmark = pytest.mark.chaos

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class Bad:
    label: str
    path: str
    body: bytes
    headers: dict[str, str]
    status: int
    reason: str  # a piece of the reason the body must give (case-insensitive)
    sign_twilio: dict[str, str] | None = None  # sign these params over the URL it is posted to


def cases(sms_uuid: str, widget_key: str, widget_token: str) -> list[Bad]:
    auth = {"Authorization": basic_auth_header()}
    email = build_email(sender="Mallory <mallory@example.net>", subject="Hi", message_id="<bad-input@mail.example.org>")
    good_postmark = postmark_inbound_json(email, recipient=SUPPORT)
    huge = b"x" * (WEBHOOK_MAX_BODY_BYTES + 1)
    sms, status = f"/twilio/sms/{sms_uuid}/", f"/twilio/status/{sms_uuid}/?m=1"
    no_sid = {k: v for k, v in inbound_params(body="no sid").items() if k not in ("MessageSid", "SmsSid", "SmsMessageSid")}
    twilio_form = inbound_params(body="forged")
    mailgun_fields = mailgun_mime_post(email, recipient=SUPPORT)
    ses_body, ses_headers = ses_inbound_sns(email)
    ses_headers = {key.removeprefix("HTTP_").replace("_", "-").title(): value for key, value in ses_headers.items()}
    widget = f"/widget/api/{widget_key}/"
    bearer = {"Authorization": f"Bearer {widget_token}"}
    boundary = "chaosboundary"
    upload = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n"
              f"Content-Type: application/octet-stream\r\n\r\n").encode() + b"\0" * (ATTACHMENT_MAX_BYTES + 1) + f"\r\n--{boundary}--\r\n".encode()
    return [
        # Postmark inbound
        Bad("postmark inbound: bad JSON", POSTMARK_INBOUND, b"{not json", {**auth, "Content-Type": JSON}, 400, "malformed"),
        Bad("postmark inbound: JSON array", POSTMARK_INBOUND, b"[1, 2]", {**auth, "Content-Type": JSON}, 400, "malformed"),
        Bad("postmark inbound: missing fields", POSTMARK_INBOUND, json.dumps({"MessageID": "x"}).encode(), {**auth, "Content-Type": JSON},
            400, "malformed"),
        Bad("postmark inbound: wrong secret", POSTMARK_INBOUND, json.dumps(good_postmark).encode(),
            {"Authorization": basic_auth_header("hook:wrong"), "Content-Type": JSON}, 400, "basic auth"),
        Bad("postmark inbound: no secret", POSTMARK_INBOUND, json.dumps(good_postmark).encode(), {"Content-Type": JSON}, 400, "basic auth"),
        Bad("postmark inbound: oversize body", POSTMARK_INBOUND, huge, {**auth, "Content-Type": JSON}, 413, "exceeds"),
        # Postmark tracking
        Bad("postmark tracking: bad JSON", POSTMARK_TRACKING, b"{not json", {**auth, "Content-Type": JSON}, 400, "malformed"),
        Bad("postmark tracking: wrong secret", POSTMARK_TRACKING, b"{}", {"Authorization": basic_auth_header("hook:wrong"),
                                                                         "Content-Type": JSON}, 400, "basic auth"),
        Bad("postmark tracking: oversize body", POSTMARK_TRACKING, huge, {**auth, "Content-Type": JSON}, 413, "exceeds"),
        # Mailgun inbound (raw MIME route) and tracking
        Bad("mailgun inbound: forged signature", "/anymail/mailgun/inbound_mime/",
            urlencode({**mailgun_fields, "signature": "0" * 64}).encode(), {**auth, "Content-Type": FORM}, 400, "signature"),
        Bad("mailgun inbound: stale timestamp", "/anymail/mailgun/inbound_mime/",
            urlencode(mailgun_mime_post(email, timestamp=int(time.time()) - 86400, key=MAILGUN_SIGNING_KEY)).encode(),
            {**auth, "Content-Type": FORM}, 400, "replay"),
        Bad("mailgun inbound: missing fields", "/anymail/mailgun/inbound_mime/",
            urlencode({k: v for k, v in mailgun_fields.items() if k != "body-mime"}).encode(), {**auth, "Content-Type": FORM}, 400, "malformed"),
        Bad("mailgun inbound: oversize body", "/anymail/mailgun/inbound_mime/", huge, {**auth, "Content-Type": FORM}, 413, "exceeds"),
        Bad("mailgun tracking: bad JSON", "/anymail/mailgun/tracking/", b"{not json", {**auth, "Content-Type": JSON}, 400, "malformed"),
        Bad("mailgun tracking: forged signature", "/anymail/mailgun/tracking/",
            json.dumps(mailgun_event(event="delivered", message_id="x@y", recipient="a@b.c", key="not-the-key")).encode(),
            {**auth, "Content-Type": JSON}, 400, "signature"),
        # Amazon SES through SNS
        Bad("ses inbound: no credentials", "/anymail/amazon_ses/inbound/", json.dumps(ses_body).encode(),
            {**ses_headers, "Content-Type": "text/plain"}, 401, ""),
        Bad("ses inbound: broken body", "/anymail/amazon_ses/inbound/", b"{broken", {**auth, **ses_headers, "Content-Type": "text/plain"},
            400, "malformed"),
        # Twilio inbound SMS and status callbacks
        Bad("twilio sms: forged signature", sms, urlencode(twilio_form).encode(),
            {"X-Twilio-Signature": "AAAAAAAAAAAAAAAAAAAAAAAAAAA=", "Content-Type": FORM}, 403, "does not match"),
        Bad("twilio sms: no signature", sms, urlencode(twilio_form).encode(), {"Content-Type": FORM}, 403, "missing"),
        Bad("twilio sms: JSON body", sms, json.dumps(twilio_form).encode(), {"Content-Type": JSON}, 400, "expected"),
        Bad("twilio sms: missing MessageSid", sms, urlencode(no_sid).encode(), {"Content-Type": FORM}, 400, "missing twilio parameter",
            sign_twilio=no_sid),
        Bad("twilio sms: oversize body", sms, huge, {"X-Twilio-Signature": "AAAAAAAAAAAAAAAAAAAAAAAAAAA=", "Content-Type": FORM},
            413, "exceeds"),
        Bad("twilio status: forged signature", status, urlencode({"MessageSid": "SMx", "MessageStatus": "delivered"}).encode(),
            {"X-Twilio-Signature": "AAAAAAAAAAAAAAAAAAAAAAAAAAA=", "Content-Type": FORM}, 403, "does not match"),
        Bad("twilio status: oversize body", status, huge, {"X-Twilio-Signature": "AAAAAAAAAAAAAAAAAAAAAAAAAAA=", "Content-Type": FORM},
            413, "exceeds"),
        # The chat widget's HTTP fallback
        Bad("widget message: bad JSON", widget + "messages", b"{not json", {**bearer, "Content-Type": JSON}, 400, "json"),
        Bad("widget message: no visitor token", widget + "messages", json.dumps({"text": "hi"}).encode(), {"Content-Type": JSON}, 403, "token"),
        Bad("widget message: forged token", widget + "messages", json.dumps({"text": "hi"}).encode(),
            {"Authorization": "Bearer forged.token", "Content-Type": JSON}, 403, "token"),
        Bad("widget attachment: oversize file", widget + "attachments", upload,
            {**bearer, "Content-Type": f"multipart/form-data; boundary={boundary}"}, 413, "limit"),
    ]


def row_counts(stack) -> dict[str, int]:
    with stack.db():
        return {model.__name__: model.objects.count() for model in (InboundEvent, Message, Contact, Conversation, Attachment, Visitor)}


def test_malformed_and_huge_inputs(stack, desk, report_line):
    started = time.monotonic()
    # A widget visitor of its own (creating the session writes rows: before the counts).
    response = session().post(f"{stack.webs[0].base}/widget/api/{desk.widget_key}/session", json={}, timeout=10)
    assert response.status_code == 200, response.text[:300]
    widget_token = response.json()["token"]
    before = row_counts(stack)

    wrong = []
    for n, bad in enumerate(cases(desk.sms_channel_uuid, desk.widget_key, widget_token)):
        web = stack.webs[n % 2]
        headers = dict(bad.headers)
        if bad.sign_twilio is not None:
            headers["X-Twilio-Signature"] = sign(web.base + bad.path, bad.sign_twilio)
        got = session().post(web.base + bad.path, data=bad.body, headers=headers, timeout=30)
        text = got.text.strip()
        if got.status_code != bad.status or bad.reason.lower() not in text.lower() or (bad.status != 401 and not text):
            wrong.append(f"{bad.label}: {got.status_code} {text[:160]!r} (documented: {bad.status} with {bad.reason!r})")
    count = len(cases(desk.sms_channel_uuid, desk.widget_key, widget_token))
    after = row_counts(stack)
    written = {name: after[name] - before[name] for name in before if after[name] != before[name]}

    # An attachment over the limit inside a message under the body limit: the mail is kept
    # with a notice, the attachment refused.
    rfc = f"big-attachment-{time.monotonic_ns()}@mail.example.org"
    email = build_email(sender="Big Sender <big@example.net>", subject="Scan attached", message_id=f"<{rfc}>",
                        attachments=[("scan.bin", "application/octet-stream", b"\1" * (ATTACHMENT_MAX_BYTES + 1))])
    payload = postmark_inbound_json(email, recipient=SUPPORT)
    kept = Inbound("email", payload["MessageID"], rfc, POSTMARK_INBOUND, body=json.dumps(payload).encode())
    response = session().post(stack.webs[1].base + POSTMARK_INBOUND, data=kept.body,
                              headers={"Authorization": basic_auth_header(), "Content-Type": JSON}, timeout=30)
    assert response.status_code == 200, response.text[:300]
    wait_in_timeline(stack, [kept])
    with stack.db():
        message = Message.objects.get(external_id=rfc)
        attachment_notice = (message.attachments.count(), list(message.notices))

    report = check_after_fault(stack, "bad-input", inbound=[kept], replies=[], started=started,
                               extra=f"{count} bad requests, {count - len(wrong)} answered as documented, "
                                     f"rows written {written or 0}; oversize attachment: {attachment_notice[0]} stored, "
                                     f"{len(attachment_notice[1])} notice")
    report_line(report.line())
    assert not wrong, "\n".join(wrong)
    assert not written, f"rows written by refused requests: {written}"
    assert attachment_notice[0] == 0 and "refused" in " ".join(attachment_notice[1]), attachment_notice
    assert not report.problems(), report.problems()
