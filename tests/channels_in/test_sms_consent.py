"""SMS consent: STOP / START / HELP keywords from the customer, per number, enforced on replies."""
from __future__ import annotations

import pytest

from channels_in.models import InboundEvent
from channels_in.services import inbound_event_process
from conversations.models import ContactIdentity, Message
from conversations.services import ApplicationError, reply_create
from tests.channels_in.sms_helpers import (
    CUSTOMER,
    inbound_params,
    inbound_url,
    post_signed,
)
from tests.channels_in.sms_helpers import sms_channel, sms_conversation, twilio  # noqa: F401 - fixtures
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def text(client, sms_channel, tasks, django_capture_on_commit_callbacks):
    """The customer texts `body`; the inbound task runs."""

    def text(body: str, **params: str) -> Message:
        with django_capture_on_commit_callbacks(execute=True):
            assert post_signed(client, inbound_url(sms_channel), inbound_params(body=body, **params)).status_code == 200
        tasks.drain()
        return Message.objects.filter(kind=Message.Kind.INBOUND).latest("id")

    return text


def identity() -> ContactIdentity:
    return ContactIdentity.objects.get(kind="phone", address=CUSTOMER)


def system_lines(conversation) -> list[str]:
    return list(conversation.messages.filter(kind=Message.Kind.SYSTEM).order_by("id").values_list("text", flat=True))


def test_stop_opts_out_and_a_reply_is_refused_with_the_reason(sms_conversation, text, twilio):
    stop = text(" stop ")

    phone = identity()
    assert phone.sms_opted_out_at is not None and phone.sms_consent_keyword == "STOP"
    assert phone.sms_consent_changed_at == phone.sms_opted_out_at
    # The keyword itself stays in the timeline, followed by what it did.
    assert stop.conversation_id == sms_conversation.pk and stop.text == " stop "
    assert system_lines(sms_conversation) == [
        f"{CUSTOMER} opted out of SMS (STOP). Replies by SMS are refused until they text START."
    ]
    with pytest.raises(ApplicationError) as refused:
        reply_create(conversation=sms_conversation, author=UserFactory(), text="Are you sure?")
    assert str(refused.value).startswith(f"{CUSTOMER} opted out of SMS (STOP, ")
    assert "until the customer texts START" in str(refused.value)
    assert not sms_conversation.messages.filter(kind=Message.Kind.OUTBOUND).exists()
    assert twilio.received == []


def test_a_reply_queued_before_stop_is_refused_by_the_adapter(sms_conversation, text, twilio, tasks, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        queued = reply_create(conversation=sms_conversation, author=UserFactory(), text="One more thing")
    pending = list(tasks.sent)
    tasks.sent.clear()  # the delivery task is still in the broker when STOP arrives
    text("UNSUBSCRIBE")
    tasks.sent.extend(pending)
    tasks.drain()

    queued.refresh_from_db()
    assert queued.delivery_status == Message.DeliveryStatus.FAILED
    assert queued.delivery_error.startswith(f"{CUSTOMER} opted out of SMS (UNSUBSCRIBE, ")
    assert twilio.received == []


def test_start_opts_back_in_and_sending_works_again(sms_conversation, text, twilio, tasks, django_capture_on_commit_callbacks):
    text("STOP")
    text("Start")

    phone = identity()
    assert phone.sms_opted_out_at is None and phone.sms_consent_keyword == "START"
    assert system_lines(sms_conversation)[-1] == f"{CUSTOMER} opted back in to SMS (START). Replies by SMS are sent again."
    with django_capture_on_commit_callbacks(execute=True):
        message = reply_create(conversation=sms_conversation, author=UserFactory(), text="Welcome back")
    tasks.drain()

    [request] = twilio.sends()
    assert (request.form["To"], request.form["Body"]) == (CUSTOMER, "Welcome back")
    message.refresh_from_db()
    assert message.delivery_status == Message.DeliveryStatus.SENT


@pytest.mark.parametrize("body", ["STOPALL", "cancel", "End", "QUIT", "revoke", "OPTOUT", "\tstop\n"])
def test_every_opt_out_keyword_counts(sms_conversation, text, body):
    text(body)
    assert identity().sms_opted_out_at is not None


@pytest.mark.parametrize("body", ["Stop sending me the wrong size", "STOP!", "please stop", "stopp"])
def test_a_sentence_is_not_a_keyword(sms_conversation, text, body):
    text(body)
    assert identity().sms_opted_out_at is None and identity().sms_consent_keyword == ""
    assert system_lines(sms_conversation) == []


def test_help_records_a_line_but_no_consent_change(sms_conversation, text):
    text("help")
    phone = identity()
    assert (phone.sms_opted_out_at, phone.sms_consent_keyword, phone.sms_consent_changed_at) == (None, "", None)
    assert system_lines(sms_conversation) == [f"{CUSTOMER} texted HELP: Twilio answers help keywords with the number's help text."]


def test_repeating_a_keyword_changes_nothing(sms_conversation, text):
    text("STOP")
    first = identity().sms_opted_out_at
    text("STOP")
    text("YES")
    text("UNSTOP")
    assert identity().sms_opted_out_at is None and identity().sms_consent_keyword == "UNSTOP"
    assert first is not None
    assert len(system_lines(sms_conversation)) == 2  # one opt-out, one opt-in


def test_a_stop_processed_after_a_later_start_does_not_win(client, sms_channel, sms_conversation, tasks, django_capture_on_commit_callbacks):
    """Events can be processed out of order (a retried one); their arrival order decides."""
    post_signed(client, inbound_url(sms_channel), inbound_params(body="STOP"))
    post_signed(client, inbound_url(sms_channel), inbound_params(body="START"))
    stop_event, start_event = InboundEvent.objects.filter(status="pending").order_by("received_at", "id")
    inbound_event_process(event_id=start_event.pk)
    inbound_event_process(event_id=stop_event.pk)

    assert identity().sms_opted_out_at is None  # START arrived last
    assert Message.objects.filter(kind="inbound", text__in=["STOP", "START"]).count() == 2


def test_advanced_opt_out_custom_keyword_uses_opt_out_type(sms_conversation, text):
    text("ARRET", OptOutType="STOP")
    phone = identity()
    assert phone.sms_opted_out_at is not None and phone.sms_consent_keyword == "ARRET"


def test_stop_to_one_of_our_numbers_stops_replies_from_every_inbox(sms_conversation, text, twilio):
    """Consent is kept per customer number, not per inbox: refuse rather than risk a fine."""
    from tests.channels_in.sms_helpers import SmsChannelFactory
    from tests.factories import ConversationFactory

    text("STOP")
    other = ConversationFactory(inbox=SmsChannelFactory(phone_number="+14155550113").inbox, contact=sms_conversation.contact)
    with pytest.raises(ApplicationError, match="opted out of SMS"):
        reply_create(conversation=other, author=UserFactory(), text="Hello from sales")
