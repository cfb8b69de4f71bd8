"""Inbound email through anymail's webhooks, with each provider's real request format."""
from __future__ import annotations

import json
import time

import pytest

from channels_in.models import InboundEvent
from conversations.models import Conversation, Message
from tests.factories import EmailChannelFactory
from tests.providers import (
    basic_auth_header,
    build_email,
    mailgun_mime_post,
    postmark_inbound_json,
    ses_inbound_sns,
)
from tickets.models import Ticket

pytestmark = pytest.mark.django_db

MAILGUN_URL = "/anymail/mailgun/inbound_mime/"
POSTMARK_URL = "/anymail/postmark/inbound/"
SES_URL = "/anymail/amazon_ses/inbound/"


@pytest.fixture
def channel():
    return EmailChannelFactory(address="support@acme.test")


@pytest.fixture
def client(client, django_capture_on_commit_callbacks):
    """Each request commits as in production: its on_commit hooks (the enqueue) run."""
    post = client.post

    def committed_post(*args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return post(*args, **kwargs)

    client.post = committed_post
    return client


def post_mailgun(client, fields, auth=True):
    extra = {"HTTP_AUTHORIZATION": basic_auth_header()} if auth else {}
    return client.post(MAILGUN_URL, fields, **extra)


def post_postmark(client, payload, auth="hook:secret-pass"):
    extra = {"HTTP_AUTHORIZATION": basic_auth_header(auth)} if auth else {}
    return client.post(POSTMARK_URL, json.dumps(payload), content_type="application/json", **extra)


def post_ses(client, body, headers):
    return client.post(SES_URL, json.dumps(body), content_type="text/plain; charset=UTF-8",
                       HTTP_AUTHORIZATION=basic_auth_header(), **headers)


def test_mailgun_raw_mime_creates_one_conversation(client, channel, tasks):
    response = post_mailgun(client, mailgun_mime_post(build_email(subject="Printer on fire")))

    assert response.status_code == 200
    assert InboundEvent.objects.filter(provider="mailgun", status="pending").count() == 1
    assert tasks.names() == ["channels_in.inbound_process"]
    tasks.drain()
    conversation = Conversation.objects.get()
    assert conversation.subject == "Printer on fire"
    assert conversation.contact.email == "jane@example.org"
    assert Ticket.objects.get(pk=conversation.pk).status == Ticket.Status.NEW
    message = conversation.messages.get()
    assert message.kind == Message.Kind.INBOUND and message.thread_rule == Message.ThreadRule.NEW
    assert InboundEvent.objects.get().status == InboundEvent.Status.PROCESSED


def test_postmark_creates_one_conversation(client, channel, tasks):
    response = post_postmark(client, postmark_inbound_json(build_email(subject="Refund please")))

    assert response.status_code == 200
    tasks.drain()
    assert Conversation.objects.get().subject == "Refund please"
    assert Message.objects.count() == 1


def test_amazon_ses_creates_one_conversation(client, channel, tasks):
    body, headers = ses_inbound_sns(build_email(subject="Where is my order"))

    response = post_ses(client, body, headers)

    assert response.status_code == 200, response.content
    tasks.drain()
    assert Conversation.objects.get().subject == "Where is my order"


@pytest.mark.parametrize("provider", ["mailgun", "postmark", "ses"])
def test_the_same_request_again_creates_nothing(client, channel, tasks, provider):
    email = build_email()
    if provider == "mailgun":
        fields = mailgun_mime_post(email)
        send = lambda: post_mailgun(client, fields)  # noqa: E731
    elif provider == "postmark":
        payload = postmark_inbound_json(email)
        send = lambda: post_postmark(client, payload)  # noqa: E731
    else:
        body, headers = ses_inbound_sns(email)
        send = lambda: post_ses(client, body, headers)  # noqa: E731

    assert send().status_code == 200
    tasks.drain()
    assert send().status_code == 200
    tasks.drain()

    assert InboundEvent.objects.count() == 1
    assert Message.objects.count() == 1


def test_the_same_message_id_from_a_new_event_creates_nothing(client, channel, tasks):
    email = build_email()
    post_postmark(client, postmark_inbound_json(email))
    post_postmark(client, postmark_inbound_json(email))  # provider re-sent it with a new event id
    tasks.drain()

    assert InboundEvent.objects.count() == 2
    assert Message.objects.count() == 1
    assert set(InboundEvent.objects.values_list("status", flat=True)) == {"processed"}


def test_reply_with_in_reply_to_lands_in_the_same_conversation(client, channel, tasks):
    first = build_email(message_id="<first@mail.example.org>")
    post_mailgun(client, mailgun_mime_post(first))
    tasks.drain()
    reply = build_email(subject="Re: Printer on fire", text="Still burning.", message_id="<second@mail.example.org>",
                        in_reply_to="<first@mail.example.org>", references="<first@mail.example.org>")

    post_mailgun(client, mailgun_mime_post(reply))
    tasks.drain()

    conversation = Conversation.objects.get()
    assert list(conversation.messages.values_list("thread_rule", flat=True)) == ["new", "in_reply_to"]


def test_forged_mailgun_signature_is_refused_and_stores_nothing(client, channel, tasks):
    fields = mailgun_mime_post(build_email(), key="not-the-key")

    response = post_mailgun(client, fields)

    assert response.status_code == 400
    assert b"incorrect signature" in response.content
    assert InboundEvent.objects.count() == 0 and tasks.sent == []


def test_wrong_webhook_secret_is_refused_and_stores_nothing(client, channel):
    response = post_postmark(client, postmark_inbound_json(build_email()), auth="hook:wrong")

    assert response.status_code == 400
    assert b"basic auth" in response.content
    assert InboundEvent.objects.count() == 0


def test_missing_webhook_secret_is_refused(client, channel):
    response = post_mailgun(client, mailgun_mime_post(build_email()), auth=False)

    assert response.status_code == 400
    assert InboundEvent.objects.count() == 0


def test_ses_without_credentials_gets_the_sns_challenge(client, channel):
    body, headers = ses_inbound_sns(build_email())

    response = client.post(SES_URL, json.dumps(body), content_type="text/plain", **headers)

    assert response.status_code == 401
    assert InboundEvent.objects.count() == 0


def test_stale_mailgun_timestamp_is_refused_as_a_replay(client, channel):
    fields = mailgun_mime_post(build_email(), timestamp=int(time.time()) - 30 * 86400)

    response = post_mailgun(client, fields)

    assert response.status_code == 400
    assert b"replay" in response.content
    assert InboundEvent.objects.count() == 0


@pytest.mark.parametrize("body", ["{not json", json.dumps({"RecordType": "Bounce"}), json.dumps([1, 2])])
def test_malformed_postmark_body_gets_400_with_a_reason(client, channel, body):
    response = client.post(POSTMARK_URL, body, content_type="application/json", HTTP_AUTHORIZATION=basic_auth_header())

    assert response.status_code == 400
    assert response.content.startswith(b"Malformed Postmark payload")
    assert InboundEvent.objects.count() == 0


def test_malformed_ses_body_gets_400(client, channel):
    response = client.post(SES_URL, "{broken", content_type="text/plain", HTTP_AUTHORIZATION=basic_auth_header(),
                           HTTP_X_AMZ_SNS_MESSAGE_TYPE="Notification", HTTP_X_AMZ_SNS_MESSAGE_ID="x")

    assert response.status_code == 400
    assert InboundEvent.objects.count() == 0


def test_oversize_attachment_is_refused_with_a_reason_and_the_rest_kept(client, channel, tasks, settings):
    settings.ATTACHMENT_MAX_BYTES = 1024 * 1024
    email = build_email(attachments=[
        ("huge.bin", "application/octet-stream", b"\0" * (2 * 1024 * 1024)),
        ("invoice.pdf", "application/pdf", b"%PDF-1.4\n" + b"x" * 1000),
    ])

    assert post_mailgun(client, mailgun_mime_post(email)).status_code == 200
    tasks.drain()

    message = Message.objects.get()
    assert "Printer" in message.subject and "printer is on fire" in message.text
    assert [a.filename for a in message.attachments.all()] == ["invoice.pdf"]
    assert message.attachments.get().content_type == "application/pdf"
    assert message.notices == ["Attachment huge.bin (2.0 MB) was refused: larger than the 1.0 MB limit."]


def test_body_over_the_webhook_limit_gets_413_with_a_reason(client, channel, settings):
    settings.WEBHOOK_MAX_BODY_BYTES = 10_000
    fields = mailgun_mime_post(build_email(text="x" * 20_000))

    response = post_mailgun(client, fields)

    assert response.status_code == 413
    assert b"exceeds the 10000 byte limit" in response.content
    assert InboundEvent.objects.count() == 0


def test_large_message_under_the_provider_limit_is_accepted(client, channel, tasks):
    # 4 MB: above Django's 2.5 MB default, which would otherwise answer 400.
    email = build_email(attachments=[("scan.pdf", "application/pdf", b"%PDF-1.4\n" + b"y" * (4 * 1024 * 1024))])

    response = post_mailgun(client, mailgun_mime_post(email))

    assert response.status_code == 200
    tasks.drain()
    assert Message.objects.get().attachments.count() == 1


def test_mail_to_an_unknown_address_is_kept_as_a_failed_event(client, channel, tasks):
    post_mailgun(client, mailgun_mime_post(build_email(to="sales@elsewhere.test"), recipient="sales@elsewhere.test"))
    tasks.drain()

    event = InboundEvent.objects.get()
    assert event.status == InboundEvent.Status.FAILED
    assert "No email inbox" in event.error
    assert Message.objects.count() == 0


def test_a_failed_event_can_be_processed_again_once_its_inbox_exists(client, channel, tasks, django_capture_on_commit_callbacks):
    from channels_in.services import inbound_event_retry

    post_mailgun(client, mailgun_mime_post(build_email(to="sales@acme.test"), recipient="sales@acme.test"))
    tasks.drain()
    event = InboundEvent.objects.get()
    assert event.status == InboundEvent.Status.FAILED
    EmailChannelFactory(address="sales@acme.test")

    with django_capture_on_commit_callbacks(execute=True):
        assert inbound_event_retry(event_id=event.pk) is True
    tasks.drain()

    event.refresh_from_db()
    assert event.status == InboundEvent.Status.PROCESSED
    assert Message.objects.get().pk == event.message_id
    assert inbound_event_retry(event_id=event.pk) is False


def test_webhooks_need_no_csrf_token_or_login(channel, tasks):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)

    response = post_postmark(strict, postmark_inbound_json(build_email()))

    assert response.status_code == 200
    assert InboundEvent.objects.count() == 1


@pytest.mark.parametrize(("sla_policy", "statements"), [(False, 20), (True, 26)])
def test_what_an_email_costs_in_queries(client, channel, tasks, django_assert_num_queries, sla_policy, statements):
    """The hot path at load: accepting a webhook, and turning it into a new conversation."""
    from channels_in.services import inbound_event_process
    from tickets.models import SlaClock, SlaMetric, SlaPolicy, SlaTarget

    if sla_policy:
        policy = SlaPolicy.objects.create(name="Standard")
        for metric, minutes in ((SlaMetric.FIRST_RESPONSE, 60), (SlaMetric.RESOLUTION, 1440)):
            SlaTarget.objects.create(policy=policy, metric=metric, priority="normal", minutes=minutes, business_hours=False)
    email = build_email(sender="Jane <jane@example.org>", to="support@acme.test", subject="Broken",
                        text="It broke.", message_id="<cost.1@mail.example.org>")
    # In a TestCase the request's transaction is a savepoint: on SQLite a real request adds
    # BEGIN and COMMIT around the same single insert.
    with django_assert_num_queries(3):
        assert post_postmark(client, postmark_inbound_json(email)).status_code == 200
    [event] = InboundEvent.objects.all()
    # Claim, parse, contact, conversation (written with its summary), ticket, message, event,
    # report fact, SLA (policy; with one: its inboxes, tags and targets, both clocks in one insert, their start
    # events in another, the ticket's badge), routing.
    with django_assert_num_queries(statements):
        message = inbound_event_process(event_id=event.pk)
    assert message.conversation.messages.count() == 1
    ticket = Ticket.objects.get(pk=message.conversation_id)
    clocks = SlaClock.objects.filter(ticket=ticket)
    assert clocks.count() == (2 if sla_policy else 0)
    assert all(clock.events.count() == 1 for clock in clocks)
    assert ticket.sla_state == ("ok" if sla_policy else "")
    assert ticket.sla_due_at == (min(c.deadline for c in clocks) if sla_policy else None)


@pytest.mark.parametrize("missing, reason", [
    (("FromFull",), "no sender"),
    (("ToFull", "CcFull", "BccFull", "OriginalRecipient"), "no recipient"),
])
def test_postmark_post_without_sender_or_recipient_is_refused_and_nothing_is_stored(client, channel, tasks, missing, reason):
    payload = postmark_inbound_json(build_email(sender="Jane <jane@example.org>", to="support@acme.test", subject="Hi",
                                                text="Hello", message_id="<nobody.1@mail.example.org>"))
    for field in missing:
        payload.pop(field, None)
    response = post_postmark(client, payload)
    assert response.status_code == 400
    assert reason in response.content.decode()
    assert not InboundEvent.objects.exists()
    assert tasks.names() == []
