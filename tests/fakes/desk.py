"""Fixtures shared by the outbound, tracking and integration tests (import them by name)."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from conversations.models import Conversation, Message
from conversations.services import reply_create
from tests.factories import EmailChannelFactory, UserFactory
from tests.fakes.postmark import FakePostmark
from tests.providers import basic_auth_header, build_email, mailgun_mime_post

SUPPORT = "support@acme.test"
# The customer's earlier mail and the one that opened our conversation (it cites the first).
CUSTOMER_FIRST_ID = "<first.4f1c@mail.example.org>"
CUSTOMER_ID = "<second.9a2e@mail.example.org>"


@pytest.fixture
def postmark(settings) -> Iterator[FakePostmark]:  # noqa: ANN001
    """The real anymail Postmark backend, talking to a local fake of Postmark's API."""
    fake = FakePostmark().start()
    settings.EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"
    settings.ANYMAIL = {
        **settings.ANYMAIL,
        "POSTMARK_SERVER_TOKEN": fake.token,
        "POSTMARK_API_URL": fake.url,
        "REQUESTS_TIMEOUT": 2,
    }
    yield fake
    fake.stop()


def post_inbound_email(client, **email: object):  # noqa: ANN001, ANN201
    """The customer's mail, as Mailgun's raw-MIME route posts it."""
    fields = mailgun_mime_post(build_email(**email), recipient=SUPPORT)
    return client.post("/anymail/mailgun/inbound_mime/", fields, HTTP_AUTHORIZATION=basic_auth_header())


@pytest.fixture
def email_conversation(client, tasks, django_capture_on_commit_callbacks) -> Conversation:  # noqa: ANN001
    """A conversation opened by a real inbound email that carries Message-ID and References."""
    EmailChannelFactory(address=SUPPORT, from_name="Acme Support")
    with django_capture_on_commit_callbacks(execute=True):
        response = post_inbound_email(
            client, subject="Printer on fire", message_id=CUSTOMER_ID, in_reply_to=CUSTOMER_FIRST_ID, references=CUSTOMER_FIRST_ID
        )
    assert response.status_code == 200
    tasks.drain()
    return Conversation.objects.get()


@pytest.fixture
def reply(django_capture_on_commit_callbacks):  # noqa: ANN001, ANN201
    """An agent's reply, committed: its on-commit enqueue runs."""

    def reply(conversation: Conversation, text: str = "We are on it: unplug it first.") -> Message:
        with django_capture_on_commit_callbacks(execute=True):
            return reply_create(conversation=conversation, author=UserFactory(), text=text)

    return reply
