"""CSAT over SMS: the question goes out through the real twilio client against a local fake
of Twilio's API; the customer's answer comes in as a signed Twilio webhook."""
from __future__ import annotations

import pytest

from conversations.models import Channel, ContactIdentity, Message
from tests.channels_in.sms_helpers import CUSTOMER, inbound_params, inbound_url, post_signed, sms_channel, sms_conversation, twilio  # noqa: F401 - fixtures
from tests.tickets.test_csat import DELIVER, solve
from tickets.csat import csat_sms_answer_parse
from tickets.models import CsatSurvey, ReportFact, Ticket

pytestmark = pytest.mark.django_db


@pytest.fixture
def asked(sms_conversation, twilio, tasks, django_capture_on_commit_callbacks) -> CsatSurvey:  # noqa: F811
    survey = solve(sms_conversation.ticket, django_capture_on_commit_callbacks)
    assert survey is not None
    tasks.drain()
    return survey


def text_in(client, channel, tasks, capture, body: str) -> Message:
    with capture(execute=True):
        assert post_signed(client, inbound_url(channel), inbound_params(body=body)).status_code == 200
    tasks.drain()
    return Message.objects.filter(kind=Message.Kind.INBOUND).latest("id")


def test_the_question_goes_out_by_sms_once(sms_conversation, twilio, tasks, django_capture_on_commit_callbacks) -> None:  # noqa: F811
    survey = solve(sms_conversation.ticket, django_capture_on_commit_callbacks)
    assert survey.channel == Channel.SMS
    assert tasks.names().count(DELIVER) == 1
    tasks.drain()
    [sent] = twilio.sends()
    assert (sent.form["To"], sent.form["Body"]) == (CUSTOMER, "How did we do? Reply 1 (poor) to 5 (great).")
    question = Message.objects.get(pk=survey.message_id)
    assert (question.author_user_id, question.delivery_status, question.external_id) == (None, "sent", sent.sid)

    # Solving it again (after an agent reopened it) asks nothing more.
    ticket = Ticket.objects.get(pk=sms_conversation.pk)
    Ticket.objects.filter(pk=ticket.pk).update(status=Ticket.Status.OPEN)
    again = solve(Ticket.objects.get(pk=ticket.pk), django_capture_on_commit_callbacks)
    assert again.pk == survey.pk and DELIVER not in tasks.names()
    tasks.drain()
    assert len(twilio.sends()) == 1


def test_a_digit_answers_without_reopening(asked, client, sms_channel, tasks, django_capture_on_commit_callbacks) -> None:  # noqa: F811
    answer = text_in(client, sms_channel, tasks, django_capture_on_commit_callbacks, "4 thanks, all sorted")

    asked.refresh_from_db()
    assert (asked.rating, asked.comment) == (4, "thanks, all sorted") and asked.answered_at is not None
    # Nothing lost: the text is in the timeline, and the conversation stays solved.
    assert answer.conversation_id == asked.ticket_id and answer.text == "4 thanks, all sorted"
    assert Ticket.objects.get(pk=asked.ticket_id).status == Ticket.Status.SOLVED
    [fact] = ReportFact.objects.filter(kind=ReportFact.Kind.CSAT)
    assert (fact.ticket_id, fact.rating, fact.channel) == (asked.ticket_id, 4, Channel.SMS)
    assert Message.objects.filter(conversation_id=asked.ticket_id, kind=Message.Kind.SYSTEM,
                                  text="The customer rated this conversation 4/5: thanks, all sorted").count() == 1

    # A second digit is just a message: it reopens and does not change the answer.
    text_in(client, sms_channel, tasks, django_capture_on_commit_callbacks, "1")
    asked.refresh_from_db()
    assert asked.rating == 4
    assert Ticket.objects.get(pk=asked.ticket_id).status == Ticket.Status.OPEN
    assert ReportFact.objects.filter(kind=ReportFact.Kind.CSAT).count() == 1


def test_a_bare_digit_is_a_rating_without_comment(asked, client, sms_channel, tasks, django_capture_on_commit_callbacks) -> None:  # noqa: F811
    text_in(client, sms_channel, tasks, django_capture_on_commit_callbacks, " 5! ")
    asked.refresh_from_db()
    assert (asked.rating, asked.comment) == (5, "")
    assert Ticket.objects.get(pk=asked.ticket_id).status == Ticket.Status.SOLVED


def test_any_other_text_reopens_and_is_not_an_answer(asked, client, sms_channel, tasks,  # noqa: F811
                                                     django_capture_on_commit_callbacks) -> None:
    message = text_in(client, sms_channel, tasks, django_capture_on_commit_callbacks, "thanks, but it broke again")
    assert message.conversation_id == asked.ticket_id
    assert Ticket.objects.get(pk=asked.ticket_id).status == Ticket.Status.OPEN
    asked.refresh_from_db()
    assert asked.answered_at is None

    # Only the first text after the question can answer it: even once solved again (which
    # asks nothing new), a digit now is just a message, and it reopens.
    assert solve(Ticket.objects.get(pk=asked.ticket_id), django_capture_on_commit_callbacks).pk == asked.pk
    text_in(client, sms_channel, tasks, django_capture_on_commit_callbacks, "3")
    asked.refresh_from_db()
    assert asked.answered_at is None and not ReportFact.objects.filter(kind=ReportFact.Kind.CSAT).exists()
    assert Ticket.objects.get(pk=asked.ticket_id).status == Ticket.Status.OPEN


def test_an_opted_out_number_is_not_asked(sms_conversation, sms_channel, client, twilio, tasks,  # noqa: F811
                                          django_capture_on_commit_callbacks) -> None:
    text_in(client, sms_channel, tasks, django_capture_on_commit_callbacks, "STOP")
    assert ContactIdentity.objects.get(kind="phone", address=CUSTOMER).sms_opted_out_at is not None

    assert solve(Ticket.objects.get(pk=sms_conversation.pk), django_capture_on_commit_callbacks) is None
    tasks.drain()
    assert not CsatSurvey.objects.exists()
    assert twilio.sends() == []
    assert not Message.objects.filter(kind=Message.Kind.OUTBOUND).exists()


@pytest.mark.parametrize(("text", "expected"), [
    ("4", (4, "")),
    (" 5! ", (5, "")),
    ("1.", (1, "")),
    ("4/5", (4, "")),
    ("4/5 great", (4, "great")),
    ("2, it took a week", (2, "it took a week")),
    ("3 - ok\nbut slow", (3, "ok\nbut slow")),
    ("45", None),
    ("3.5", None),
    ("1st reply was wrong", None),
    ("6", None),
    ("0", None),
    ("five", None),
    ("", None),
    ("thanks, but it broke again", None),
])
def test_what_counts_as_a_rating(text, expected) -> None:
    assert csat_sms_answer_parse(text) == expected
