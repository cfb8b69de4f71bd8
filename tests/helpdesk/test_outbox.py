"""The local outbox page shows what the file backend wrote instead of sending."""
from __future__ import annotations

import pytest
from django.core.mail import EmailMessage

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def file_backend(settings, tmp_path):
    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    settings.EMAIL_FILE_PATH = str(tmp_path / "outbox")


def test_staff_see_sent_replies_newest_first(client, file_backend):
    EmailMessage("Re: Printer [#1]", "First reply", "support@acme.test", ["jane@example.org"],
                 headers={"Message-ID": "<one@acme.test>"}).send()
    EmailMessage("Re: Refund [#2]", "Second reply", "support@acme.test", ["joe@example.org"],
                 reply_to=["support+c2.abc@acme.test"]).send()
    client.force_login(UserFactory(is_staff=True))

    body = client.get("/outbox/").content.decode()

    assert body.index("Second reply") < body.index("First reply")
    assert "support+c2.abc@acme.test" in body and "&lt;one@acme.test&gt;" in body


def test_non_staff_are_refused(client, file_backend):
    client.force_login(UserFactory(is_staff=False))
    assert client.get("/outbox/").status_code == 403


def test_absent_when_a_provider_is_configured(client, settings):
    settings.EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"
    client.force_login(UserFactory(is_staff=True))
    assert client.get("/outbox/").status_code == 404
