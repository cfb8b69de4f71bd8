"""SMS replies through the twilio package's real client, against a local fake of Twilio's API.

Only the HTTP edge is fake: reply_create, the outbound task, the adapter, twilio.rest.Client
and the sweeper are the real code.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from channels_in.adapters.sms import SmsAdapter
from channels_in.services import outbound_deliver, sweep
from conversations.models import ContactIdentity, Message
from conversations.services import ApplicationError, reply_create
from helpdesk.celery import app as celery_app
from tests.channels_in.sms_helpers import (
    CUSTOMER,
    DESK_NUMBER,
    SmsChannelFactory,
)
from tests.channels_in.sms_helpers import sms_channel, sms_conversation, twilio  # noqa: F401 - fixtures
from tests.factories import ContactFactory, ConversationFactory, InboxFactory, UserFactory
from tests.fakes.twilio import INVALID_TO, OPTED_OUT, SERVER_ERROR, TOO_MANY, Reply

pytestmark = pytest.mark.django_db

DELIVER = "channels_in.outbound_deliver"


def deliver_task(message_id: int) -> None:
    """The task exactly as a worker runs it (e.g. a redelivered broker message)."""
    celery_app.loader.import_default_modules()
    celery_app.tasks[DELIVER](message_id)


def time_passes(message: Message) -> None:
    Message.objects.filter(pk=message.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))


def test_sms_reply_is_sent_once(sms_conversation, sms_channel, reply, twilio, tasks, settings):
    message = reply(sms_conversation, "Your parcel ships today.")
    assert tasks.names() == [DELIVER]
    # The enqueued task is still in the broker when the grace period ends: the sweeper
    # enqueues it again, and the broker redelivers the first one too.
    time_passes(message)
    assert sweep()["outbound"] == 1
    assert tasks.drain() == 2
    deliver_task(message.pk)

    [request] = twilio.sends()
    assert request.path == f"/2010-04-01/Accounts/{twilio.account_sid}/Messages.json"
    assert request.form == {
        "To": CUSTOMER,
        "From": DESK_NUMBER,
        "Body": "Your parcel ships today.",
        "StatusCallback": f"{settings.SITE_URL}/twilio/status/{sms_channel.uuid}/?m={message.pk}",
    }
    message.refresh_from_db()
    assert message.delivery_status == Message.DeliveryStatus.SENT
    assert message.external_id == request.sid and request.sid.startswith("SM")
    assert (message.from_address, message.to_address) == (DESK_NUMBER, CUSTOMER)
    assert (message.delivery_attempts, message.delivery_error) == (1, "")
    assert sweep() == {"inbound": 0, "outbound": 0, "interrupted": 0}


def test_messaging_service_is_used_when_configured(sms_conversation, sms_channel, reply, twilio, tasks):
    sms_channel.messaging_service_sid = "MG" + "a" * 32
    sms_channel.save()
    message = reply(sms_conversation)
    tasks.drain()

    [request] = twilio.sends()
    assert request.form["MessagingServiceSid"] == sms_channel.messaging_service_sid and "From" not in request.form
    message.refresh_from_db()
    assert message.delivery_status == Message.DeliveryStatus.SENT


@pytest.mark.parametrize("failure", [SERVER_ERROR, TOO_MANY])
def test_server_errors_and_rate_limits_are_retried_after_backoff(sms_conversation, reply, twilio, tasks, failure):
    twilio.queue(failure)
    message = reply(sms_conversation)
    tasks.drain()

    message.refresh_from_db()
    assert message.delivery_status == Message.DeliveryStatus.QUEUED
    assert message.next_attempt_at > timezone.now()
    assert f"HTTP {failure.status}" in message.delivery_error
    deliver_task(message.pk)  # a duplicate task before the backoff is over: nothing
    assert len(twilio.sends()) == 1

    time_passes(message)
    assert sweep()["outbound"] == 1
    tasks.drain()
    message.refresh_from_db()
    assert message.delivery_status == Message.DeliveryStatus.SENT
    assert len(twilio.sends()) == 2 and message.external_id == twilio.sends()[1].sid


def test_an_invalid_number_fails_permanently_with_twilios_reason(sms_conversation, reply, twilio, tasks):
    twilio.queue(INVALID_TO)
    message = reply(sms_conversation)
    tasks.drain()

    message.refresh_from_db()
    assert message.delivery_status == Message.DeliveryStatus.FAILED
    assert message.delivery_error == "Twilio error 21211: the 'To' number is not a valid phone number."
    time_passes(message)
    assert sweep()["outbound"] == 0 and len(twilio.sends()) == 1


def test_error_21610_fails_permanently_and_opts_the_number_out(sms_conversation, reply, twilio, tasks):
    twilio.queue(OPTED_OUT)
    message = reply(sms_conversation)
    tasks.drain()

    message.refresh_from_db()
    assert message.delivery_status == Message.DeliveryStatus.FAILED
    assert message.delivery_error.startswith("Twilio error 21610: the recipient has opted out")
    identity = ContactIdentity.objects.get(kind="phone", address=CUSTOMER)
    assert identity.sms_opted_out_at is not None and identity.sms_consent_keyword == "21610"
    line = sms_conversation.messages.get(kind=Message.Kind.SYSTEM)
    assert line.text.startswith(f"{CUSTOMER} opted out of SMS (Twilio refused to send (error 21610")
    with pytest.raises(ApplicationError, match="opted out of SMS"):
        reply_create(conversation=sms_conversation, author=UserFactory(), text="Hello?")
    assert len(twilio.sends()) == 1


def test_unreachable_api_is_transient(sms_conversation, reply, twilio, tasks):
    twilio.stop()  # connection refused
    message = reply(sms_conversation)
    tasks.drain()

    message.refresh_from_db()
    assert message.delivery_status == Message.DeliveryStatus.QUEUED
    assert "Could not reach Twilio: ConnectionError" in message.delivery_error


def test_a_slow_api_times_out_and_is_retried(sms_conversation, reply, twilio, tasks, settings):
    settings.TWILIO_TIMEOUT_SECONDS = 0.3
    twilio.queue(Reply(delay=1.0))
    message = reply(sms_conversation)
    tasks.drain()

    message.refresh_from_db()
    assert message.delivery_status == Message.DeliveryStatus.QUEUED
    assert "Could not reach Twilio: ReadTimeout" in message.delivery_error


def test_without_an_sms_number_or_a_phone_nothing_is_sent(twilio, tasks, django_capture_on_commit_callbacks):
    author = UserFactory()
    no_number = ConversationFactory(inbox=InboxFactory(kind="sms"), contact=ContactFactory(phone=CUSTOMER))
    no_phone = ConversationFactory(inbox=SmsChannelFactory(phone_number="+14155550111").inbox, contact=ContactFactory(phone=""))
    with django_capture_on_commit_callbacks(execute=True):
        first = reply_create(conversation=no_number, author=author, text="hi")
        second = reply_create(conversation=no_phone, author=author, text="hi")
    tasks.drain()

    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.delivery_status, first.delivery_error) == ("failed", "This inbox has no SMS number to send from.")
    assert (second.delivery_status, second.delivery_error) == ("failed", "The contact has no phone number.")
    assert twilio.received == []


def test_a_chat_is_answered_by_sms_to_the_contacts_phone(twilio, tasks, django_capture_on_commit_callbacks):
    """An inbox's SMS number answers a conversation that began elsewhere (the contact's phone)."""
    channel = SmsChannelFactory(phone_number="+14155550112", inbox=InboxFactory(kind="webchat"))
    conversation = ConversationFactory(inbox=channel.inbox, contact=ContactFactory(phone="+1 415 555 1234"))
    with django_capture_on_commit_callbacks(execute=True):
        message = reply_create(conversation=conversation, author=UserFactory(), text="Texting you", channel="sms")
    tasks.drain()

    [request] = twilio.sends()
    assert (request.form["To"], request.form["From"]) == (CUSTOMER, "+14155550112")
    message.refresh_from_db()
    assert message.delivery_status == "sent" and message.channel == "sms"


def test_adapter_never_calls_twilio_for_an_opted_out_number(sms_conversation, twilio):
    ContactIdentity.objects.filter(address=CUSTOMER).update(sms_opted_out_at=timezone.now(), sms_consent_keyword="STOP")
    message = Message.objects.create(conversation=sms_conversation, kind="outbound", channel="sms", text="x", delivery_status="sending")
    from channels_in.adapters import AdapterError

    with pytest.raises(AdapterError) as refused:
        SmsAdapter().send(message)
    assert refused.value.permanent and "opted out of SMS (STOP" in str(refused.value)
    assert twilio.received == []
    outbound_deliver(message_id=message.pk)  # not queued: nothing happens
    assert twilio.received == []
