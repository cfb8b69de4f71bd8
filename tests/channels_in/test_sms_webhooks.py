"""Twilio's inbound SMS webhook: signed posts become one timeline message each.

Posts are signed with the twilio package's own RequestValidator; MMS media comes from the
local fake of Twilio's API. Only that HTTP edge is fake.
"""
from __future__ import annotations

import struct
import uuid
import zlib

import pytest
from django.test import override_settings

from channels_in.models import InboundEvent
from channels_in.services import inbound_event_process
from conversations.models import Attachment, ContactIdentity, Conversation, Message
from tests.channels_in.sms_helpers import (
    CUSTOMER,
    DESK_NUMBER,
    SmsChannelFactory,
    inbound_params,
    inbound_url,
    post_signed,
    sign,
    status_url,
)
from tests.channels_in.sms_helpers import sms_channel, twilio  # noqa: F401 - fixtures
from tickets.models import Ticket

pytestmark = pytest.mark.django_db



def _png() -> bytes:
    """A real 1x1 PNG: the desk detects types from content (libmagic), not from Twilio's claim."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)) + chunk(
        b"IDAT", zlib.compress(b"\x00\xff\x00\x00")) + chunk(b"IEND", b"")


PNG = _png()


def receive(client, channel, tasks, django_capture_on_commit_callbacks, **params):
    """Twilio posts the SMS; the enqueued processing runs."""
    with django_capture_on_commit_callbacks(execute=True):
        response = post_signed(client, inbound_url(channel), inbound_params(**params))
    assert response.status_code == 200, response.content
    tasks.drain()
    return response


def test_signed_webhook_is_stored_and_becomes_a_message(client, sms_channel, tasks, django_capture_on_commit_callbacks):
    params = inbound_params(body="  Where is my parcel?  ")
    with django_capture_on_commit_callbacks(execute=True):
        response = post_signed(client, inbound_url(sms_channel), params)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/xml")
    assert response.content == b'<?xml version="1.0" encoding="UTF-8"?><Response/>'
    event = InboundEvent.objects.get()
    assert (event.provider, event.event_id, event.recipient, event.meta) == ("twilio", params["MessageSid"], DESK_NUMBER, {"channel": sms_channel.pk})
    assert tasks.names() == ["channels_in.inbound_process"]

    tasks.drain()
    message = Message.objects.get()
    assert (message.kind, message.channel, message.external_id) == ("inbound", "sms", params["MessageSid"])
    assert (message.from_address, message.to_address, message.text) == (CUSTOMER, DESK_NUMBER, "  Where is my parcel?  ")
    assert message.thread_rule == Message.ThreadRule.NEW
    assert message.conversation.inbox == sms_channel.inbox
    assert Ticket.objects.get(pk=message.conversation_id).status == Ticket.Status.NEW
    identity = ContactIdentity.objects.get(kind="phone")
    assert identity.address == CUSTOMER and message.author_contact == identity.contact
    assert identity.contact.phone == CUSTOMER
    event.refresh_from_db()
    assert (event.status, event.message_id) == (InboundEvent.Status.PROCESSED, message.pk)


@pytest.mark.parametrize("signature", ["", "Zm9yZ2Vk", "wrong-token"])
def test_forged_or_missing_signature_is_refused_and_nothing_stored(client, sms_channel, tasks, signature):
    path = inbound_url(sms_channel)
    params = inbound_params()
    if signature == "wrong-token":
        response = post_signed(client, path, params, token="not-the-auth-token")
    else:
        response = post_signed(client, path, params, signature=signature or "")

    assert response.status_code == 403
    assert response["Content-Type"].startswith("text/plain")
    assert (b"Missing X-Twilio-Signature" if not signature else b"does not match") in response.content
    assert InboundEvent.objects.count() == 0 and tasks.sent == []


def test_signature_covers_every_parameter_and_the_url(client, sms_channel):
    path = inbound_url(sms_channel)
    params = inbound_params(body="Refund me")
    assert post_signed(client, path, params).status_code == 200
    tampered = post_signed(client, path, {**params, "Body": "Refund me twice", "MessageSid": "SMother"},
                           signature=sign(f"http://testserver{path}", params))
    other_url = post_signed(client, path + "?x=1", params, signature=sign(f"http://testserver{path}", params))
    # A parameter Twilio added that we do not know of is signed like the others.
    extended = post_signed(client, path, inbound_params(OptOutType="", Carrier="Acme Mobile"))

    assert (tampered.status_code, other_url.status_code, extended.status_code) == (403, 403, 200)
    assert InboundEvent.objects.count() == 2


def test_same_message_sid_twice_gives_one_message(client, sms_channel, tasks, django_capture_on_commit_callbacks):
    sid = "SM" + uuid.uuid4().hex
    first = receive(client, sms_channel, tasks, django_capture_on_commit_callbacks, sid=sid, body="Hi")
    again = receive(client, sms_channel, tasks, django_capture_on_commit_callbacks, sid=sid, body="Hi")

    assert first.content == again.content
    assert InboundEvent.objects.count() == 1
    assert Message.objects.filter(kind="inbound").count() == 1
    # A redelivered task for the processed event does nothing either.
    assert inbound_event_process(event_id=InboundEvent.objects.get().pk) is None
    assert Message.objects.count() == 1


def test_unknown_channel_is_404_and_bad_posts_are_400(client, sms_channel):
    unknown = post_signed(client, f"/twilio/sms/{uuid.uuid4()}/", inbound_params())
    no_sid = post_signed(client, inbound_url(sms_channel), {k: v for k, v in inbound_params().items() if k != "MessageSid"})
    no_from = post_signed(client, inbound_url(sms_channel), inbound_params(from_=""))
    json_body = client.post(inbound_url(sms_channel), {"MessageSid": "SM1"}, content_type="application/json")
    get = client.get(inbound_url(sms_channel))

    assert unknown.status_code == 404
    assert (no_sid.status_code, no_sid.content) == (400, b"Missing Twilio parameter(s): MessageSid.")
    assert (no_from.status_code, no_from.content) == (400, b"Missing Twilio parameter(s): From.")
    assert json_body.status_code == 400 and b"x-www-form-urlencoded" in json_body.content
    assert get.status_code == 405
    assert InboundEvent.objects.count() == 0


def test_a_webhook_signed_for_another_channel_is_refused(client, sms_channel):
    other = SmsChannelFactory(phone_number="+14155550199", auth_token="other-token")
    params = inbound_params(to=other.phone_number)
    # Signed with the other channel's token but posted to this channel's URL.
    response = post_signed(client, inbound_url(sms_channel), params, token=other.auth_token)
    assert response.status_code == 403 and InboundEvent.objects.count() == 0


def test_numbers_are_normalised_to_e164_and_garbage_senders_fail(client, sms_channel, tasks, django_capture_on_commit_callbacks):
    receive(client, sms_channel, tasks, django_capture_on_commit_callbacks, from_="+1 (415) 555-1234", body="spaced")
    receive(client, sms_channel, tasks, django_capture_on_commit_callbacks, from_="not-a-number", body="bogus")

    message = Message.objects.get()
    assert message.from_address == CUSTOMER
    failed = InboundEvent.objects.get(status=InboundEvent.Status.FAILED)
    assert "not a phone number" in failed.error and failed.attempts == 1


def test_texts_from_one_number_share_a_conversation_until_its_ticket_is_closed(client, sms_channel, tasks, django_capture_on_commit_callbacks):
    receive(client, sms_channel, tasks, django_capture_on_commit_callbacks, body="first")
    conversation = Conversation.objects.get()
    Ticket.objects.filter(pk=conversation.pk).update(status=Ticket.Status.SOLVED)
    receive(client, sms_channel, tasks, django_capture_on_commit_callbacks, body="second")

    second = Message.objects.get(text="second")
    assert second.conversation_id == conversation.pk
    assert Ticket.objects.get(pk=conversation.pk).status == Ticket.Status.OPEN  # reopened by the text
    assert conversation.messages.filter(kind="system", text__startswith="Reopened").exists()

    Ticket.objects.filter(pk=conversation.pk).update(status=Ticket.Status.CLOSED)
    receive(client, sms_channel, tasks, django_capture_on_commit_callbacks, body="third")
    third = Message.objects.get(text="third")
    assert third.conversation_id != conversation.pk and third.thread_rule == Message.ThreadRule.NEW
    assert third.conversation.contact_id == conversation.contact_id
    # Another number is another customer.
    receive(client, sms_channel, tasks, django_capture_on_commit_callbacks, body="fourth", from_="+14155559876")
    assert Message.objects.get(text="fourth").conversation.contact_id != conversation.contact_id


def test_mms_media_is_fetched_and_stored_as_attachments(client, sms_channel, twilio, tasks, django_capture_on_commit_callbacks):
    jpeg = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x01" * 200
    media = [(twilio.add_media(PNG, "image/png"), "image/png"), (twilio.add_media(jpeg, "image/jpeg"), "image/jpeg")]
    receive(client, sms_channel, tasks, django_capture_on_commit_callbacks, body="Photo of the damage", media=media)

    message = Message.objects.get()
    attachments = list(Attachment.objects.filter(message=message).order_by("filename"))
    assert [(a.filename, a.content_type, a.size) for a in attachments] == [
        ("media-1.png", "image/png", len(PNG)), ("media-2.jpg", "image/jpeg", len(jpeg)),
    ]
    assert attachments[0].file.read() == PNG
    assert message.notices == []
    # Authenticated at Twilio's API, and the credentials were not sent on to the CDN.
    gets = twilio.media_requests()
    assert [r.path.startswith("/2010-04-01/") for r in gets] == [True, False, True, False]
    assert all(("Authorization" in r.headers) == r.path.startswith("/2010-04-01/") for r in gets)


def test_api_twilio_com_media_urls_go_to_the_configured_base_url(client, sms_channel, twilio, tasks, django_capture_on_commit_callbacks):
    media = [(twilio.add_media(PNG, "image/png", real_host=True), "image/png")]
    receive(client, sms_channel, tasks, django_capture_on_commit_callbacks, media=media)
    assert Attachment.objects.get().size == len(PNG)


def test_media_refused_by_twilio_leaves_a_notice_without_retrying(client, sms_channel, twilio, tasks, django_capture_on_commit_callbacks):
    media = [(twilio.add_media(PNG, "image/png", fail_status=404), "image/png")]
    receive(client, sms_channel, tasks, django_capture_on_commit_callbacks, body="see picture", media=media)

    message = Message.objects.get()
    assert message.text == "see picture" and not message.attachments.exists()
    assert message.notices == ["MMS media media-1.png could not be fetched from Twilio (HTTP 404)."]
    assert InboundEvent.objects.get().attempts == 1


def test_media_from_a_host_that_is_not_twilio_is_not_fetched(client, sms_channel, twilio, tasks, django_capture_on_commit_callbacks):
    receive(client, sms_channel, tasks, django_capture_on_commit_callbacks, media=[("http://169.254.169.254/latest/meta-data", "image/png")])
    [notice] = Message.objects.get().notices
    assert "not a Twilio media URL" in notice
    assert twilio.received == []


def test_transient_media_failure_is_retried_then_kept_without_media_on_the_last_attempt(
    client, sms_channel, twilio, tasks, django_capture_on_commit_callbacks, settings
):
    settings.HELPDESK = {**settings.HELPDESK, "INBOUND_MAX_ATTEMPTS": 2}
    media = [(twilio.add_media(PNG, "image/png", fail_status=503), "image/png")]
    with django_capture_on_commit_callbacks(execute=True):
        post_signed(client, inbound_url(sms_channel), inbound_params(body="see picture", media=media))
    event = InboundEvent.objects.get()

    with pytest.raises(Exception, match="HTTP 503"):
        tasks.drain()  # the task fails: the event stays pending for the sweeper
    event.refresh_from_db()
    assert (event.status, event.attempts, Message.objects.count()) == (InboundEvent.Status.PENDING, 1, 0)

    # Twilio's media store is still down on the last allowed attempt.
    inbound_event_process(event_id=event.pk)
    message = Message.objects.get()
    assert message.text == "see picture" and not message.attachments.exists()
    assert message.notices == ["MMS media media-1.png could not be fetched from Twilio (HTTP 503); the text was kept without it."]
    event.refresh_from_db()
    assert (event.status, event.attempts) == (InboundEvent.Status.PROCESSED, 2)


def test_media_retry_succeeds_when_twilio_recovers(client, sms_channel, twilio, tasks, django_capture_on_commit_callbacks):
    url = twilio.add_media(PNG, "image/png", fail_status=500)
    with django_capture_on_commit_callbacks(execute=True):
        post_signed(client, inbound_url(sms_channel), inbound_params(media=[(url, "image/png")]))
    with pytest.raises(Exception, match="HTTP 500"):
        tasks.drain()
    for media in twilio.media.values():
        media.fail_status = None
    inbound_event_process(event_id=InboundEvent.objects.get().pk)
    assert Message.objects.get().attachments.get().size == len(PNG)


@override_settings(ALLOWED_HOSTS=["desk.example.com"], USE_X_FORWARDED_HOST=True, SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"))
def test_signature_is_checked_against_the_public_url_behind_a_proxy(client, sms_channel):
    from urllib.parse import urlencode

    path = inbound_url(sms_channel)
    params = inbound_params()
    response = client.post(
        path, urlencode(params), content_type="application/x-www-form-urlencoded",
        HTTP_X_TWILIO_SIGNATURE=sign(f"https://desk.example.com{path}", params),
        HTTP_X_FORWARDED_PROTO="https", HTTP_X_FORWARDED_HOST="desk.example.com",
    )
    assert response.status_code == 200


@pytest.mark.parametrize("url", [inbound_url, status_url])
def test_body_over_the_webhook_limit_gets_413_with_a_reason(client, sms_channel, settings, url):
    settings.WEBHOOK_MAX_BODY_BYTES = 10_000
    response = post_signed(client, url(sms_channel), inbound_params(body="x" * 20_000))
    assert response.status_code == 413
    assert b"exceeds the 10000 byte limit" in response.content
    assert not InboundEvent.objects.exists()
