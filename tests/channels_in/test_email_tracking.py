"""Delivery receipts: provider tracking webhooks move a reply's status forward, never back."""
from __future__ import annotations

import json

import pytest

from channels_in.tracking import tracking_event_apply
from conversations.models import Event, Message
from tests.factories import MessageFactory
from tests.fakes.tracking import mailgun_event, postmark_bounce, postmark_delivery
from tests.providers import basic_auth_header

pytestmark = pytest.mark.django_db

POSTMARK_TRACKING = "/anymail/postmark/tracking/"
MAILGUN_TRACKING = "/anymail/mailgun/tracking/"


@pytest.fixture
def sent(email_conversation, reply, postmark, tasks) -> Message:
    """A reply Postmark accepted (status sent, external_id = Postmark's MessageID)."""
    message = reply(email_conversation)
    tasks.drain()
    message.refresh_from_db()
    assert message.delivery_status == Message.DeliveryStatus.SENT
    assert message.external_id == postmark.received[0].message_id
    return message


def post_postmark(client, payload: dict, auth: str = "hook:secret-pass"):  # noqa: ANN001, ANN201
    return client.post(POSTMARK_TRACKING, json.dumps(payload), content_type="application/json",
                       HTTP_AUTHORIZATION=basic_auth_header(auth))


def post_mailgun(client, payload: dict):  # noqa: ANN001, ANN201
    return client.post(MAILGUN_TRACKING, json.dumps(payload), content_type="application/json",
                       HTTP_AUTHORIZATION=basic_auth_header())


def status_of(message: Message) -> tuple[str, str]:
    message.refresh_from_db()
    return message.delivery_status, message.delivery_error


def test_postmark_delivery_marks_delivered_and_a_late_sent_changes_nothing(client, sent):
    events_before = Event.objects.count()

    response = post_postmark(client, postmark_delivery(message_id=sent.external_id, recipient="jane@example.org",
                                                       metadata={"message_id": str(sent.pk)}))

    assert response.status_code == 200
    assert status_of(sent) == (Message.DeliveryStatus.DELIVERED, "")
    assert list(Event.objects.order_by("id").values_list("type", "message_id")[events_before:]) == [("message.updated", sent.pk)]

    assert tracking_event_apply(provider_message_id=sent.external_id, desk_message_id=str(sent.pk), status="sent", reason="") is False
    assert status_of(sent) == (Message.DeliveryStatus.DELIVERED, "")


def test_postmark_delivery_found_by_provider_id_alone(client, sent):
    response = post_postmark(client, postmark_delivery(message_id=sent.external_id, recipient="jane@example.org"))

    assert response.status_code == 200
    assert status_of(sent)[0] == Message.DeliveryStatus.DELIVERED


def test_postmark_bounce_for_unknown_mail_is_acknowledged_and_ignored(client, sent):
    events_before = Event.objects.count()

    response = post_postmark(client, postmark_bounce(message_id="0f3ab1c2-9d8e-4f5a-b6c7-d8e9f0a1b2c3", recipient="other@example.net"))

    assert response.status_code == 200  # not ours: a non-200 would only make Postmark retry for hours
    assert status_of(sent) == (Message.DeliveryStatus.SENT, "")
    assert Event.objects.count() == events_before


def test_postmark_hard_bounce_after_sent_fails_with_the_reason(client, sent):
    response = post_postmark(client, postmark_bounce(message_id=sent.external_id, recipient="jane@example.org",
                                                     metadata={"message_id": str(sent.pk)}))

    assert response.status_code == 200
    status, error = status_of(sent)
    assert status == Message.DeliveryStatus.FAILED
    assert error.startswith("bounced ")
    assert "550 5.1.1 The email account that you tried to reach does not exist." in error
    assert "unable to deliver your message" in error

    # A delivery receipt arriving after the bounce does not hide the failure.
    post_postmark(client, postmark_delivery(message_id=sent.external_id, recipient="jane@example.org"))
    assert status_of(sent)[0] == Message.DeliveryStatus.FAILED


def test_postmark_transient_bounce_is_informational(client, sent):
    response = post_postmark(client, postmark_bounce(message_id=sent.external_id, recipient="jane@example.org", kind="Transient"))

    assert response.status_code == 200
    assert status_of(sent) == (Message.DeliveryStatus.SENT, "")


def test_tracking_without_the_webhook_secret_is_refused(client, sent):
    response = post_postmark(client, postmark_bounce(message_id=sent.external_id, recipient="jane@example.org"), auth="hook:wrong")

    assert response.status_code == 400
    assert status_of(sent) == (Message.DeliveryStatus.SENT, "")


def test_a_receipt_never_touches_an_inbound_message(email_conversation):
    # A provider may report on mail it routed to us, under the customer's Message-ID, which
    # is the inbound message's external_id.
    inbound = email_conversation.messages.get()

    changed = tracking_event_apply(provider_message_id=inbound.external_id, desk_message_id=None, status="sent", reason="")

    assert changed is False
    assert status_of(inbound) == ("", "")


@pytest.fixture
def mailgun_sent(email_conversation) -> Message:
    """A reply sent through Mailgun: anymail stores Mailgun's "id", angle brackets included."""
    return MessageFactory(conversation=email_conversation, kind=Message.Kind.OUTBOUND,
                          external_id="<20250312101500.1.ABCDEF0123456789@mg.acme.test>",
                          delivery_status=Message.DeliveryStatus.SENT)


def test_mailgun_delivered_then_late_accepted(client, mailgun_sent):
    delivered = mailgun_event(event="delivered", message_id=mailgun_sent.external_id, recipient="jane@example.org",
                              user_variables={"message_id": str(mailgun_sent.pk)},
                              **{"delivery-status": {"code": 250, "message": "OK", "description": "", "attempt-no": 1}})
    accepted = mailgun_event(event="accepted", message_id=mailgun_sent.external_id, recipient="jane@example.org")

    assert post_mailgun(client, delivered).status_code == 200
    assert status_of(mailgun_sent)[0] == Message.DeliveryStatus.DELIVERED
    assert post_mailgun(client, accepted).status_code == 200  # mapped to "sent": older than delivered
    assert status_of(mailgun_sent)[0] == Message.DeliveryStatus.DELIVERED


def test_mailgun_permanent_failure_and_bad_signature(client, mailgun_sent):
    failed = mailgun_event(event="failed", message_id=mailgun_sent.external_id, recipient="jane@example.org",
                           severity="permanent", reason="bounce",
                           **{"delivery-status": {"code": 550, "message": "5.1.1 No such user", "description": "", "attempt-no": 1}})
    forged = mailgun_event(event="failed", message_id=mailgun_sent.external_id, recipient="jane@example.org",
                           severity="permanent", reason="bounce", key="not-the-key")

    assert post_mailgun(client, forged).status_code == 400
    assert status_of(mailgun_sent) == (Message.DeliveryStatus.SENT, "")
    assert post_mailgun(client, failed).status_code == 200
    status, error = status_of(mailgun_sent)
    assert status == Message.DeliveryStatus.FAILED and "5.1.1 No such user" in error


def test_mailgun_temporary_failure_keeps_sent(client, mailgun_sent):
    deferred = mailgun_event(event="failed", message_id=mailgun_sent.external_id, recipient="jane@example.org",
                             severity="temporary", reason="generic",
                             **{"delivery-status": {"code": 421, "message": "4.7.0 Try again later", "description": "", "attempt-no": 1}})

    assert post_mailgun(client, deferred).status_code == 200
    assert status_of(mailgun_sent) == (Message.DeliveryStatus.SENT, "")


def test_mailgun_tracking_that_is_not_json_is_called_malformed_not_forged(client, mailgun_sent):
    response = client.post(MAILGUN_TRACKING, "{not json", content_type="application/json",
                           HTTP_AUTHORIZATION=basic_auth_header())
    assert response.status_code == 400
    assert response.content.decode().startswith("Malformed Mailgun payload")
    assert status_of(mailgun_sent) == (Message.DeliveryStatus.SENT, "")
