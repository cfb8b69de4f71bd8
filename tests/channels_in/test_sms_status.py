"""Twilio's status callbacks: signed, matched to our message, applied forward only."""
from __future__ import annotations

import pytest

from conversations.models import ContactIdentity, Message
from tests.channels_in.sms_helpers import (
    CUSTOMER,
    post_signed,
    status_params,
    status_url,
)
from tests.channels_in.sms_helpers import sms_channel, sms_conversation, twilio  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(sms_conversation, reply, twilio, tasks) -> Message:
    """A reply sent through the fake Twilio: it has its SM sid."""
    message = reply(sms_conversation, "On its way")
    tasks.drain()
    message.refresh_from_db()
    assert message.delivery_status == Message.DeliveryStatus.SENT and message.external_id.startswith("SM")
    return message


def callback(client, channel, message: Message, status: str, *, sid: str | None = None, m: int | None | str = "", **kw):
    message_id = message.pk if m == "" else m
    response = post_signed(client, status_url(channel, message_id), status_params(sid or message.external_id, status, **kw))
    assert response.status_code == 200, response.content
    assert response.content == b""
    message.refresh_from_db()
    return message.delivery_status


def test_delivered_before_sent_stays_delivered(client, sms_channel, sent):
    assert callback(client, sms_channel, sent, "queued") == "sent"  # says nothing new
    assert callback(client, sms_channel, sent, "delivered") == "delivered"
    assert callback(client, sms_channel, sent, "sent") == "delivered"
    assert callback(client, sms_channel, sent, "sending") == "delivered"
    assert callback(client, sms_channel, sent, "read") == "read"
    assert callback(client, sms_channel, sent, "delivered") == "read"


def test_failed_after_sent_records_a_readable_reason(client, sms_channel, sent):
    assert callback(client, sms_channel, sent, "sent") == "sent"
    assert callback(client, sms_channel, sent, "undelivered", error_code="30003") == "failed"
    assert sent.delivery_error == "Twilio error 30003: the handset is unreachable (switched off or out of coverage)."
    assert callback(client, sms_channel, sent, "delivered") == "failed"  # a late receipt does not undo it


@pytest.mark.parametrize(("code", "words"), [("30005", "unknown number"), ("30006", "landline"), ("30007", "carrier filtered"),
                                             ("39999", "the message was failed"), (None, "Twilio reported the message as failed.")])
def test_failure_reasons(client, sms_channel, sent, code, words):
    assert callback(client, sms_channel, sent, "failed", error_code=code) == "failed"
    assert words in sent.delivery_error


def test_failed_with_21610_opts_the_number_out(client, sms_channel, sent, sms_conversation):
    callback(client, sms_channel, sent, "failed", error_code="21610")
    phone = ContactIdentity.objects.get(kind="phone", address=CUSTOMER)
    assert phone.sms_opted_out_at is not None and phone.sms_consent_keyword == "21610"
    assert sms_conversation.messages.filter(kind="system", text__contains="opted out of SMS").count() == 1


def test_forged_callback_is_refused_and_changes_nothing(client, sms_channel, sent):
    path = status_url(sms_channel, sent.pk)
    forged = post_signed(client, path, status_params(sent.external_id, "failed", error_code="30003"), token="guessed")
    unsigned = post_signed(client, path, status_params(sent.external_id, "failed"), signature="")
    assert (forged.status_code, unsigned.status_code) == (403, 403)
    sent.refresh_from_db()
    assert (sent.delivery_status, sent.delivery_error) == ("sent", "")


def test_unknown_or_foreign_messages_are_answered_200_and_left_alone(client, sms_channel, sent, sms_conversation):
    from tests.channels_in.sms_helpers import SmsChannelFactory

    other_channel = SmsChannelFactory(phone_number="+14155550114")
    # Another channel's callback URL (its own valid signature) naming our message.
    assert callback(client, other_channel, sent, "failed", error_code="30003") == "sent"
    assert callback(client, sms_channel, sent, "failed", m=999999) == "sent"
    assert callback(client, sms_channel, sent, "failed", m="abc") == "sent"
    # Our id with another SID: a callback for some other send.
    assert callback(client, sms_channel, sent, "failed", sid="SM" + "f" * 32) == "sent"
    inbound = sms_conversation.messages.get(kind="inbound")
    assert callback(client, sms_channel, inbound, "failed", sid="SMx", m=inbound.pk) == ""


def test_without_m_the_message_is_found_by_its_sid(client, sms_channel, sent):
    assert callback(client, sms_channel, sent, "delivered", m=None) == "delivered"


def test_a_callback_that_overtakes_our_sent_write_records_the_sid(client, sms_channel, sms_conversation):
    """Twilio may call back before the worker has stored the SID create() returned."""
    message = Message.objects.create(conversation=sms_conversation, kind="outbound", channel="sms", text="x", delivery_status="sending")
    assert callback(client, sms_channel, message, "sent", sid="SM" + "1" * 32) == "sent"
    assert (message.external_id, message.to_address) == ("SM" + "1" * 32, CUSTOMER)
    assert callback(client, sms_channel, message, "delivered", sid="SM" + "2" * 32) == "sent"  # another SID: ignored
    assert callback(client, sms_channel, message, "delivered", m=None, sid="SM" + "1" * 32) == "delivered"
