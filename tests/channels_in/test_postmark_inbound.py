"""Postmark's inbound post is stored as received and read in the worker.

The worker reads Postmark's fields directly instead of building a MIME message with anymail
and parsing its bytes again. These tests hold the two to the same result, mail by mail.
"""
from __future__ import annotations

import base64
import dataclasses
import json

import pytest
from anymail.webhooks.postmark import PostmarkInboundWebhookView

from channels_in.adapters.email import parse_inbound, postmark_inbound_check, postmark_inbound_parse
from channels_in.models import InboundEvent
from tests.providers import basic_auth_header, build_email, postmark_inbound_json

POSTMARK_URL = "/anymail/postmark/inbound/"


def through_anymail(payload: dict):  # noqa: ANN201 - what the desk made of a post when anymail built the email
    message = PostmarkInboundWebhookView().esp_to_anymail_event(payload).message
    return parse_inbound(message.as_bytes(), envelope_recipient=message.envelope_recipient or "",
                         stripped_text=message.stripped_text or "")


def _attachment(name, content_type, data, content_id=""):  # noqa: ANN001, ANN202
    return {"Name": name, "Content": base64.b64encode(data).decode(), "ContentType": content_type,
            "ContentLength": len(data), "ContentID": content_id}


def _payloads() -> dict[str, dict]:
    plain = postmark_inbound_json(build_email())
    reply = postmark_inbound_json(build_email(
        sender='"Doe, Jane" <Jane.Doe@Example.org>', subject="  Re: [#42] Printer on fire  ",
        text="Thanks!\r\n\r\nOn Monday, Support wrote:\r\n> Try turning it off.\r\n",
        html="<p>Thanks!</p><blockquote>Try turning it off.</blockquote><script>x()</script>",
        in_reply_to="<abc@desk.acme.test>", references="<first@desk.acme.test> <abc@desk.acme.test>",
    ), recipient="support+c12.abcd@acme.test", stripped="Thanks!")
    reply["CcFull"] = [{"Email": "boss@example.org", "Name": "The Boss", "MailboxHash": ""}]
    unicode_mail = postmark_inbound_json(build_email(
        sender="Zoë Müller <zoe@example.de>", subject="Überweisung 🧾 fehlt", text="Grüße — 你好\n",
    ))
    unicode_mail["Headers"].append({"Name": "Delivered-To", "Value": "help@acme.test"})
    unicode_mail["Headers"].append({"Name": "X-Original-To", "Value": "Help Desk <HELP@acme.test>"})
    files = postmark_inbound_json(build_email(html="<p>See <img src='cid:logo@x'></p>"))
    files["Attachments"] = [
        _attachment("invoice.pdf", "application/pdf", b"%PDF-1.4\n" + bytes(range(256)) * 4),
        _attachment("logo.png", "image/png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, content_id="logo@x"),
        _attachment("bad\r\nname.txt", "text/plain", "naïve text\n".encode()),
        {"Name": None, "Data": base64.b64encode(b"no name").decode(), "ContentType": "application/octet-stream"},
    ]
    empty = postmark_inbound_json(build_email(text=""))
    empty.update({"TextBody": "", "HtmlBody": "", "Subject": "", "Headers": []})
    empty.pop("StrippedTextReply")
    no_original = postmark_inbound_json(build_email())
    no_original.pop("OriginalRecipient")
    no_original["ToFull"].append({"Email": "other@acme.test", "Name": "Other", "MailboxHash": ""})
    forwarded = postmark_inbound_json(build_email(subject="Fwd: the thread"))
    forwarded["Attachments"] = [_attachment("thread.eml", "message/rfc822", build_email(subject="inner").as_bytes())]
    raw = postmark_inbound_json(build_email(subject="raw wins"))
    raw["RawEmail"] = build_email(subject="From RawEmail", text="the original bytes").as_string()
    return {"plain": plain, "reply": reply, "unicode": unicode_mail, "files": files, "empty": empty,
            "no_original_recipient": no_original, "forwarded_email": forwarded, "raw_email": raw}


PAYLOADS = _payloads()


@pytest.mark.parametrize("name", PAYLOADS)
def test_read_from_the_fields_equals_anymails_email(name):
    payload = PAYLOADS[name]

    parsed = postmark_inbound_parse(json.dumps(payload).encode())

    expected = through_anymail(payload)
    assert (parsed.recipients, parsed.from_name) == (expected.recipients, expected.from_name)
    assert dataclasses.replace(parsed.incoming, attachments=()) == dataclasses.replace(expected.incoming, attachments=())
    assert [(a.filename, a.content_id) for a in parsed.incoming.attachments] == [
        (a.filename, a.content_id) for a in expected.incoming.attachments]
    assert parsed.incoming.from_address


def test_attachment_bytes_are_postmarks_exactly():
    """Building a MIME message and serialising it turned a binary attachment's CR bytes into
    LF; read from Postmark's base64, the file is the one the customer sent."""
    payload = PAYLOADS["files"]

    parsed = postmark_inbound_parse(json.dumps(payload).encode())

    sent = {a["Name"]: base64.b64decode(a.get("Content") or a["Data"]) for a in payload["Attachments"]}
    assert parsed.incoming.attachments[1].content == sent["invoice.pdf"]
    assert parsed.incoming.attachments[2].content == sent["logo.png"]


def test_fields_are_read_as_written():
    parsed = postmark_inbound_parse(json.dumps(PAYLOADS["reply"]).encode())
    incoming = parsed.incoming

    assert (incoming.from_address, incoming.from_name) == ("jane.doe@example.org", "Doe, Jane")
    assert incoming.subject == "Re: [#42] Printer on fire"
    assert incoming.text_display == "Thanks!"
    assert "<script>" not in incoming.html
    assert (incoming.in_reply_to, incoming.rfc_message_id) == ("<abc@desk.acme.test>", incoming.external_id)
    assert parsed.recipients == ["support+c12.abcd@acme.test", "support+c12.abcd@acme.test", "boss@example.org"]
    files = postmark_inbound_parse(json.dumps(PAYLOADS["files"]).encode()).incoming.attachments
    assert [(a.filename, a.content_id) for a in files] == [
        ("attachment", ""), ("invoice.pdf", ""), ("logo.png", "<logo@x>"), ("bad name.txt", "")]
    assert files[1].content.startswith(b"%PDF-1.4\n") and len(files[1].content) == 9 + 1024


@pytest.mark.parametrize(("change", "reason"), [
    ({"FromFull": {"Email": " ", "Name": "x"}}, "no sender"),
    ({"FromFull": "jane@example.org"}, "no sender"),
    ({"ToFull": [], "CcFull": [], "BccFull": [], "OriginalRecipient": ""}, "no recipient"),
    ({"ToFull": "support@acme.test"}, "ToFull is not a list"),
    ({"RecordType": "Delivery"}, "Delivery"),
    ({"Subject": ["a list"]}, "Subject is not a string"),
    ({"Headers": [{"Name": "Message-ID"}]}, "header without"),
    ({"Attachments": [{"Name": "a.bin", "Content": "not base64!", "ContentType": "application/octet-stream"}]}, "base64"),
    ({"Attachments": [{"Name": "a.bin", "ContentType": "application/octet-stream"}]}, "without Content"),
    ({"Attachments": [{"Name": 7, "Content": "eA==", "ContentType": "application/octet-stream"}]}, "not a string"),
])
def test_a_post_that_cannot_become_a_message_is_refused_before_it_is_stored(client, change, reason, db):
    payload = {**PAYLOADS["plain"], **change}

    with pytest.raises(ValueError, match=reason):
        postmark_inbound_check(json.dumps(payload).encode())
    response = client.post(POSTMARK_URL, json.dumps(payload), content_type="application/json",
                           HTTP_AUTHORIZATION=basic_auth_header())

    assert response.status_code == 400
    assert response.content.startswith(b"Malformed Postmark payload") and reason.encode() in response.content
    assert InboundEvent.objects.count() == 0


def test_the_post_is_stored_exactly_as_received(client, db):
    body = json.dumps(PAYLOADS["reply"], indent=1).encode()

    response = client.post(POSTMARK_URL, body, content_type="application/json", HTTP_AUTHORIZATION=basic_auth_header())

    assert response.status_code == 200
    event = InboundEvent.objects.get()
    assert bytes(event.raw) == body
    assert (event.provider, event.event_id, event.recipient) == ("postmark", PAYLOADS["reply"]["MessageID"], "support+c12.abcd@acme.test")
    assert event.meta == {"esp": "Postmark", "format": "postmark-json", "envelope_sender": "Jane.Doe@Example.org"}
