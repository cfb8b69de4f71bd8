"""`manage.py ingest_email`: the MTA pipe."""
from __future__ import annotations

import io
import mailbox
import sys

import pytest
from django.core.management import call_command

from channels_in.models import InboundEvent
from conversations.models import Conversation, Message
from tests.factories import EmailChannelFactory
from tests.providers import build_email

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def channel():
    return EmailChannelFactory(address="support@acme.test")


@pytest.fixture
def run(monkeypatch, django_capture_on_commit_callbacks):
    def run(data: bytes, *args: str) -> str:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
        out = io.StringIO()
        with django_capture_on_commit_callbacks(execute=True):
            call_command("ingest_email", *args, stdout=out)
        return out.getvalue()

    return run


def test_one_message_is_stored_and_processed_once(run, tasks):
    raw = build_email(subject="Piped in").as_bytes()

    assert "stored 1 message(s), 0 already known" in run(raw, "--recipient", "support@acme.test")
    assert "stored 0 message(s), 1 already known" in run(raw)
    tasks.drain()

    assert InboundEvent.objects.get().provider == "mta"
    assert Conversation.objects.get().subject == "Piped in"


def test_an_mbox_stores_every_message(run, tmp_path, tasks):
    box = mailbox.mbox(tmp_path / "in.mbox")
    first = build_email(subject="First", message_id="<m1@example.org>")
    box.add(first)
    box.add(build_email(subject="Re: First", message_id="<m2@example.org>", in_reply_to="<m1@example.org>"))
    box.add(build_email(subject="Another topic", message_id="<m3@example.org>"))
    box.flush()

    out = run((tmp_path / "in.mbox").read_bytes(), "--now")

    assert "stored 3 message(s)" in out
    assert Message.objects.count() == 3
    assert sorted(Conversation.objects.values_list("message_count", flat=True)) == [1, 2]


def test_empty_input_exits_with_dataerr(run):
    with pytest.raises(SystemExit) as exit_info:
        run(b"")
    assert exit_info.value.code == 65
    assert InboundEvent.objects.count() == 0
