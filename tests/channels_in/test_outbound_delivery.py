"""Agent replies through the real anymail Postmark backend, against a local fake of its API.

Only the HTTP edge is fake: reply_create, the outbound task, the adapter, anymail and the
sweeper are the real code.
"""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from channels_in.services import sweep
from conversations.models import Message
from conversations.services import ApplicationError, reply_retry
from conversations.threading import reply_token_conversation_id
from helpdesk.celery import app as celery_app
from tests.fakes.desk import CUSTOMER_FIRST_ID, CUSTOMER_ID
from tests.fakes.postmark import INVALID_TO, SERVER_ERROR, Reply

pytestmark = pytest.mark.django_db

DELIVER = "channels_in.outbound_deliver"


def deliver_task(message_id: int) -> None:
    """The task exactly as a worker runs it (e.g. a redelivered broker message)."""
    celery_app.loader.import_default_modules()
    celery_app.tasks[DELIVER](message_id)


def time_passes(message: Message) -> None:
    """The message's due time (first-enqueue grace or retry backoff) is over."""
    Message.objects.filter(pk=message.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))


def test_reply_is_sent_once_with_threading_headers(email_conversation, reply, postmark, tasks):
    message = reply(email_conversation, "We are on it: unplug it first.")
    assert tasks.names() == [DELIVER]
    # The first task message is still in the broker when its grace period ends, so the
    # sweeper enqueues the reply a second time; then the broker redelivers the first one.
    time_passes(message)
    assert sweep()["outbound"] == 1

    assert tasks.drain() == 2
    deliver_task(message.pk)

    [request] = postmark.received
    assert request.path == "/email"
    assert request.headers["X-Postmark-Server-Token"] == postmark.token
    sent = request.json
    assert sent["From"] == "Acme Support <support@acme.test>"
    assert sent["To"] == "jane@example.org"
    assert sent["Subject"] == f"Re: Printer on fire [#{email_conversation.pk}]"
    assert sent["TextBody"] == "We are on it: unplug it first."
    assert sent["Metadata"] == {"message_id": str(message.pk)}
    assert request.header("Message-ID") == f"<{message.rfc_message_id}>"
    assert request.header("In-Reply-To") == CUSTOMER_ID
    assert request.header("References") == f"{CUSTOMER_FIRST_ID} {CUSTOMER_ID}"
    token = re.fullmatch(r"support\+(c\d+\.[0-9a-f]{16})@acme\.test", sent["ReplyTo"]).group(1)
    assert reply_token_conversation_id(token) == email_conversation.pk

    message.refresh_from_db()
    assert message.delivery_status == Message.DeliveryStatus.SENT
    assert message.external_id == request.message_id
    assert (message.from_address, message.to_address) == ("Acme Support <support@acme.test>", sent["To"])
    assert (message.delivery_attempts, message.delivery_error, message.next_attempt_at) == (1, "", None)
    assert sweep() == {"inbound": 0, "outbound": 0, "interrupted": 0}


def test_server_error_is_retried_after_backoff_then_sent(email_conversation, reply, postmark, tasks):
    postmark.queue(SERVER_ERROR)
    message = reply(email_conversation)

    tasks.drain()

    message.refresh_from_db()
    assert message.delivery_status == Message.DeliveryStatus.QUEUED
    assert message.next_attempt_at > timezone.now()
    assert message.delivery_error.startswith("Attempt 1 failed, will retry: Provider error 500")
    assert "Internal server error" in message.delivery_error
    assert sweep()["outbound"] == 0  # not due during the backoff

    time_passes(message)
    assert sweep()["outbound"] == 1
    tasks.drain()

    first, second = postmark.received
    message.refresh_from_db()
    assert message.delivery_status == Message.DeliveryStatus.SENT
    assert message.external_id == second.message_id and first.message_id is None
    assert (message.delivery_attempts, message.delivery_error, message.next_attempt_at) == (2, "", None)
    # The retry is the same email: mail clients see one message, not two.
    assert first.header("Message-ID") == second.header("Message-ID") == f"<{message.rfc_message_id}>"


def test_provider_timeout_is_transient(email_conversation, reply, postmark, tasks, settings):
    settings.ANYMAIL = {**settings.ANYMAIL, "REQUESTS_TIMEOUT": 0.3}
    postmark.queue(Reply(delay=1.0))
    message = reply(email_conversation)

    tasks.drain()

    message.refresh_from_db()
    assert message.delivery_status == Message.DeliveryStatus.QUEUED
    assert "Attempt 1 failed, will retry" in message.delivery_error and "Read timed out" in message.delivery_error
    assert message.next_attempt_at > timezone.now()


def test_transient_errors_give_up_after_the_attempt_limit(email_conversation, reply, postmark, tasks, settings):
    settings.HELPDESK = {**settings.HELPDESK, "OUTBOUND_MAX_ATTEMPTS": 2}
    postmark.queue(SERVER_ERROR, SERVER_ERROR)
    message = reply(email_conversation)
    tasks.drain()
    time_passes(message)
    sweep()

    tasks.drain()

    message.refresh_from_db()
    assert message.delivery_status == Message.DeliveryStatus.FAILED
    assert message.delivery_error.startswith("Gave up after 2 attempts. Last error: Provider error 500")
    assert message.next_attempt_at is None
    assert len(postmark.received) == 2


INACTIVE = Reply(422, {
    "ErrorCode": 406,
    "Message": "You tried to send to a recipient that has been marked as inactive.\nFound inactive addresses: {to}.\n"
               "Inactive recipients are ones that have generated a hard bounce or a spam complaint.",
})


@pytest.mark.parametrize(("refusal", "reason"), [
    (INVALID_TO, "Invalid 'To' address: 'jane@example.org'"),
    (INACTIVE, "Found inactive addresses: jane@example.org"),
])
def test_refused_recipient_fails_permanently_and_retry_sends_again(
    email_conversation, reply, postmark, tasks, django_capture_on_commit_callbacks, refusal, reason
):
    postmark.queue(refusal)
    message = reply(email_conversation)

    tasks.drain()

    message.refresh_from_db()
    assert message.delivery_status == Message.DeliveryStatus.FAILED
    assert message.delivery_error.startswith("Recipient refused")
    assert reason in message.delivery_error  # the provider's own words, for the agent
    assert message.next_attempt_at is None
    assert sweep()["outbound"] == 0 and tasks.sent == []

    with django_capture_on_commit_callbacks(execute=True):
        reply_retry(message=message)
    tasks.drain()

    message.refresh_from_db()
    assert message.delivery_status == Message.DeliveryStatus.SENT
    assert message.external_id == postmark.received[1].message_id
    assert (message.delivery_attempts, message.delivery_error) == (1, "")
    assert len(postmark.received) == 2
    with pytest.raises(ApplicationError):
        reply_retry(message=message)  # only a failed reply goes again


def test_other_client_errors_are_permanent(email_conversation, reply, postmark, tasks):
    postmark.queue(Reply(422, {"ErrorCode": 300, "Message": "Invalid 'From' address: 'support@acme.test'."}))
    message = reply(email_conversation)

    tasks.drain()

    message.refresh_from_db()
    assert message.delivery_status == Message.DeliveryStatus.FAILED
    assert message.delivery_error.startswith("Provider error 422")
    assert "Invalid 'From' address" in message.delivery_error


def test_rate_limit_is_transient(email_conversation, reply, postmark, tasks):
    postmark.queue(Reply(429, {"ErrorCode": 429, "Message": "Rate limit exceeded."}))
    message = reply(email_conversation)

    tasks.drain()

    message.refresh_from_db()
    assert message.delivery_status == Message.DeliveryStatus.QUEUED
    assert "Provider error 429" in message.delivery_error


def test_a_duplicate_task_during_the_backoff_does_not_skip_it(email_conversation, reply, postmark, tasks):
    from channels_in.services import outbound_deliver

    postmark.queue(SERVER_ERROR)
    message = reply(email_conversation)
    tasks.drain()

    outbound_deliver(message_id=message.pk)  # a redelivered copy of the task, before the retry is due

    message.refresh_from_db()
    assert len(postmark.received) == 1
    assert (message.delivery_status, message.delivery_attempts) == (Message.DeliveryStatus.QUEUED, 1)
