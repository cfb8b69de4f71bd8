"""SMS test helpers: a channel factory, the fake Twilio API, and posts signed like Twilio's.

Fixtures here are imported by name into the test modules that use them.
"""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import urlencode

import factory
import pytest
from django.urls import reverse
from twilio.request_validator import RequestValidator

from channels_in.models import SmsChannel
from conversations.models import Channel
from tests.factories import InboxFactory
from tests.fakes.twilio import FakeTwilio

DESK_NUMBER = "+14155550100"
CUSTOMER = "+14155551234"
HOST = "testserver"


class SmsChannelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SmsChannel

    inbox = factory.SubFactory(InboxFactory, kind=Channel.SMS)
    account_sid = FakeTwilio.account_sid
    auth_token = FakeTwilio.auth_token
    phone_number = factory.Sequence(lambda n: f"+1415555{n:04d}" if n else DESK_NUMBER)


@pytest.fixture
def twilio(settings) -> Iterator[FakeTwilio]:
    """The local fake of Twilio's API; the desk's Twilio calls go to it."""
    fake = FakeTwilio().start()
    settings.TWILIO_API_BASE_URL = fake.url
    settings.TWILIO_TIMEOUT_SECONDS = 2
    yield fake
    fake.stop()


@pytest.fixture
def sms_channel(db) -> SmsChannel:
    return SmsChannelFactory(phone_number=DESK_NUMBER)


def sign(url: str, params: dict[str, str], token: str = FakeTwilio.auth_token) -> str:
    """X-Twilio-Signature as Twilio computes it (the twilio package's own validator)."""
    return RequestValidator(token).compute_signature(url, params)


def inbound_params(*, sid: str | None = None, body: str = "Hello, my order is late", from_: str = CUSTOMER,
                   to: str = DESK_NUMBER, media: list[tuple[str, str]] = (), **extra: str) -> dict[str, str]:
    """The form Twilio posts for an incoming SMS/MMS (RELIABILITY.md §2), media as (url, type)."""
    sid = sid or "SM" + uuid.uuid4().hex
    params = {
        "ToCountry": "US", "ToState": "CA", "SmsMessageSid": sid, "NumMedia": str(len(media)), "ToCity": "SAN FRANCISCO",
        "FromZip": "94105", "SmsSid": sid, "FromState": "CA", "SmsStatus": "received", "FromCity": "SAN FRANCISCO",
        "Body": body, "FromCountry": "US", "To": to, "MessagingServiceSid": "", "ToZip": "94105", "NumSegments": "1",
        "MessageSid": sid, "AccountSid": FakeTwilio.account_sid, "From": from_, "ApiVersion": "2010-04-01",
    }
    for n, (url, content_type) in enumerate(media):
        params[f"MediaUrl{n}"] = url
        params[f"MediaContentType{n}"] = content_type
    params.update(extra)
    return params


def inbound_url(channel: SmsChannel) -> str:
    return reverse("twilio_sms_inbound", kwargs={"channel_uuid": channel.uuid})


def status_url(channel: SmsChannel, message_id: int | None = None) -> str:
    path = reverse("twilio_sms_status", kwargs={"channel_uuid": channel.uuid})
    return f"{path}?m={message_id}" if message_id is not None else path


def post_signed(client, path: str, params: dict[str, str], *, signature: str | None = None, token: str = FakeTwilio.auth_token):
    """POST the form as Twilio does: urlencoded, signed over the full URL and every parameter."""
    if signature is None:
        signature = sign(f"http://{HOST}{path}", params, token)
    headers = {"HTTP_X_TWILIO_SIGNATURE": signature} if signature else {}
    return client.post(path, urlencode(params), content_type="application/x-www-form-urlencoded", **headers)


def status_params(message_sid: str, status: str, *, to: str = CUSTOMER, error_code: str | None = None) -> dict[str, str]:
    """A status callback's form (RELIABILITY.md §2)."""
    params = {
        "SmsSid": message_sid, "SmsStatus": status, "MessageStatus": status, "To": to, "MessageSid": message_sid,
        "AccountSid": FakeTwilio.account_sid, "From": DESK_NUMBER, "ApiVersion": "2010-04-01",
    }
    if error_code is not None:
        params["ErrorCode"] = error_code
    return params


@pytest.fixture
def sms_conversation(client, sms_channel, tasks, django_capture_on_commit_callbacks):
    """A conversation opened by a real, signed inbound SMS from CUSTOMER."""
    from conversations.models import Conversation

    with django_capture_on_commit_callbacks(execute=True):
        response = post_signed(client, inbound_url(sms_channel), inbound_params(body="My order #123 is late"))
    assert response.status_code == 200
    tasks.drain()
    return Conversation.objects.get()
