"""CSAT: the question after a solve (email through the real anymail Postmark backend against a
local fake, web chat through the widget's push) and the public answer page."""
from __future__ import annotations

import uuid

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.test import Client

from channels_in import widget
from conversations.models import Channel, Conversation, Event, Message
from conversations.realtime import customer_group
from tests.channels_in.test_widget_http import layer_receive, make_webchat
from tests.factories import TeamFactory, UserFactory
from tests.fakes.desk import email_conversation, post_inbound_email, postmark  # noqa: F401 - fixtures
from tickets.csat import csat_request
from tickets.models import CsatSurvey, ReportFact, Ticket
from tickets.services import ticket_set_status

pytestmark = pytest.mark.django_db

DELIVER = "channels_in.outbound_deliver"


def solve(ticket: Ticket, capture, by=None) -> CsatSurvey | None:
    """Solve through the real status service, which asks in its transaction."""
    by = by or UserFactory()
    with capture(execute=True):
        ticket = ticket_set_status(ticket=ticket, status=Ticket.Status.SOLVED, by=by)
    return CsatSurvey.objects.filter(ticket=ticket).first()


def csat_page(survey: CsatSurvey) -> str:
    return f"/csat/{survey.token}/"


@pytest.fixture
def asked(email_conversation, postmark, tasks, django_capture_on_commit_callbacks) -> CsatSurvey:  # noqa: F811
    survey = solve(email_conversation.ticket, django_capture_on_commit_callbacks)
    tasks.drain()
    return survey


# Asking ---------------------------------------------------------------------------------

def test_email_customer_is_asked_once_with_a_link(email_conversation, postmark, tasks, settings,  # noqa: F811
                                                   django_capture_on_commit_callbacks, client) -> None:
    survey = solve(email_conversation.ticket, django_capture_on_commit_callbacks)

    assert survey is not None and survey.channel == Channel.EMAIL
    assert tasks.names().count(DELIVER) == 1
    tasks.drain()
    [sent] = postmark.received
    assert sent.json["To"] == "jane@example.org"
    assert f"{settings.SITE_URL}/csat/{survey.token}/" in sent.json["TextBody"]
    question = Message.objects.get(pk=survey.message_id)
    assert (question.kind, question.channel, question.author_user_id) == (Message.Kind.OUTBOUND, Channel.EMAIL, None)
    assert question.delivery_status == Message.DeliveryStatus.SENT
    # It threads like a reply: the customer's answer by email comes back to this conversation.
    assert sent.header("In-Reply-To") and sent.header("Message-ID") == f"<{question.rfc_message_id}>"

    # The customer writes again (the ticket reopens), and it is solved a second time: no new question.
    with django_capture_on_commit_callbacks(execute=True):
        post_inbound_email(client, subject="Re: Printer on fire", message_id="<again.1@mail.example.org>",
                           in_reply_to=f"<{question.rfc_message_id}>")
    tasks.drain()
    ticket = Ticket.objects.get(pk=email_conversation.pk)
    assert ticket.status == Ticket.Status.OPEN
    again = solve(ticket, django_capture_on_commit_callbacks)
    assert again.pk == survey.pk
    assert DELIVER not in tasks.names()
    assert CsatSurvey.objects.count() == 1
    assert Message.objects.filter(kind=Message.Kind.OUTBOUND, author_user=None).count() == 1
    tasks.drain()
    assert len(postmark.received) == 1


def test_web_chat_visitor_gets_the_question_pushed(tasks, django_capture_on_commit_callbacks, settings) -> None:
    chat = make_webchat(email_address=None)
    visitor = widget.visitor_session(channel=chat, name="Ada")
    message, _ = widget.visitor_message_send(visitor=visitor, text="Where is my parcel?", client_id=str(uuid.uuid4()))
    conversation = message.conversation
    layer = get_channel_layer()
    listener = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(customer_group(conversation.pk), listener)

    survey = solve(Ticket.objects.get(pk=conversation.pk), django_capture_on_commit_callbacks)
    assert survey.channel == Channel.WEBCHAT
    assert tasks.names().count(DELIVER) == 1
    with django_capture_on_commit_callbacks(execute=True):
        tasks.drain()

    pushed = layer_receive(listener)
    assert pushed["type"] == "widget.message"
    assert pushed["message"]["id"] == survey.message_id
    assert pushed["message"]["direction"] == "out" and pushed["message"]["author_name"] == ""
    assert f"{settings.SITE_URL}/csat/{survey.token}/" in pushed["message"]["text"]
    # And the widget's history (what a reconnecting widget fetches) has it too.
    visitor.refresh_from_db()
    texts = [m.text for m in widget.visitor_messages(visitor=visitor)]
    assert texts[-1] == Message.objects.get(pk=survey.message_id).text


def test_nothing_is_asked_when_csat_is_disabled(email_conversation, postmark, tasks, settings,  # noqa: F811
                                                django_capture_on_commit_callbacks) -> None:
    settings.HELPDESK = {**settings.HELPDESK, "CSAT_ENABLED": False}
    assert solve(email_conversation.ticket, django_capture_on_commit_callbacks) is None
    tasks.drain()
    assert not CsatSurvey.objects.exists() and postmark.received == []
    assert not Message.objects.filter(kind=Message.Kind.OUTBOUND).exists()


def test_nothing_is_asked_for_a_merged_conversation(email_conversation, postmark, tasks,  # noqa: F811
                                                    django_capture_on_commit_callbacks) -> None:
    # Set directly, messages left in place: a real merge also moves the messages away, which
    # alone would leave no channel to ask on; this pins the merge rule itself.
    target = Conversation.objects.create(inbox=email_conversation.inbox, contact=email_conversation.contact)
    Conversation.objects.filter(pk=email_conversation.pk).update(merged_into=target)
    assert solve(Ticket.objects.get(pk=email_conversation.pk), django_capture_on_commit_callbacks) is None
    tasks.drain()
    assert not CsatSurvey.objects.exists() and postmark.received == []


def test_nothing_is_asked_when_not_solved(email_conversation, tasks) -> None:  # noqa: F811
    ticket = Ticket.objects.get(pk=email_conversation.pk)
    Ticket.objects.filter(pk=ticket.pk).update(status=Ticket.Status.CLOSED)
    ticket.refresh_from_db()
    assert csat_request(ticket=ticket, by=UserFactory()) is None
    assert not CsatSurvey.objects.exists()


def test_nothing_is_asked_when_the_customer_cannot_be_reached(tasks, django_capture_on_commit_callbacks) -> None:
    # A chat whose visitor is gone (no visitor row): no channel to ask on.
    chat = make_webchat(email_address=None)
    visitor = widget.visitor_session(channel=chat, name="Ada")
    message, _ = widget.visitor_message_send(visitor=visitor, text="Hello", client_id=str(uuid.uuid4()))
    visitor.delete()
    assert solve(Ticket.objects.get(pk=message.conversation_id), django_capture_on_commit_callbacks) is None
    assert not CsatSurvey.objects.exists()
    assert DELIVER not in tasks.names()


# Answering ------------------------------------------------------------------------------

def test_the_page_is_public_and_a_get_records_nothing(asked, client) -> None:
    response = client.get(csat_page(asked) + "?r=4")
    assert response.status_code == 200
    body = response.content.decode()
    assert 'name="rating" id="rating-4" value="4" required checked' in body
    assert body.count(" checked") == 1
    assert 'name="csrfmiddlewaretoken"' in body
    asked.refresh_from_db()
    assert (asked.rating, asked.answered_at) == (None, None)
    assert not ReportFact.objects.filter(kind=ReportFact.Kind.CSAT).exists()


def test_a_post_records_the_answer_once_with_fact_line_and_event(asked, client) -> None:
    agent, team = UserFactory(), TeamFactory()
    Ticket.objects.filter(pk=asked.ticket_id).update(assignee=agent, team=team, priority=Ticket.Priority.HIGH)
    events_before = Event.objects.filter(type="conversation.updated", conversation_id=asked.ticket_id).count()

    response = client.post(csat_page(asked), {"rating": "4", "comment": "Quick and kind."})
    assert response.status_code == 200
    assert "Thank you" in response.content.decode() and "4/5" in response.content.decode()
    asked.refresh_from_db()
    assert (asked.rating, asked.comment) == (4, "Quick and kind.") and asked.answered_at is not None

    [fact] = ReportFact.objects.filter(kind=ReportFact.Kind.CSAT)
    conversation = Conversation.objects.get(pk=asked.ticket_id)
    assert (fact.ticket_id, fact.rating, fact.at, fact.channel) == (asked.ticket_id, 4, asked.answered_at, Channel.EMAIL)
    assert (fact.inbox_id, fact.team_id, fact.agent_id, fact.priority) == (conversation.inbox_id, team.pk, agent.pk, "high")
    line = Message.objects.filter(conversation=conversation, kind=Message.Kind.SYSTEM).latest("id")
    assert line.text == "The customer rated this conversation 4/5: Quick and kind."
    assert Event.objects.filter(type="conversation.updated", conversation_id=asked.ticket_id).count() == events_before + 1

    # A second answer (another tab, the link again) changes nothing and says so.
    again = client.post(csat_page(asked), {"rating": "1", "comment": "changed my mind"})
    assert again.status_code == 200
    assert "already answered" in again.content.decode() and "4/5" in again.content.decode()
    asked.refresh_from_db()
    assert (asked.rating, asked.comment) == (4, "Quick and kind.")
    assert ReportFact.objects.filter(kind=ReportFact.Kind.CSAT).count() == 1
    assert Message.objects.filter(conversation=conversation, text__startswith="The customer rated").count() == 1
    assert "already answered" in client.get(csat_page(asked)).content.decode()


@pytest.mark.parametrize("rating", ["0", "6", "abc", "", "4.5"])
def test_a_rating_outside_one_to_five_is_refused(asked, client, rating) -> None:
    response = client.post(csat_page(asked), {"rating": rating, "comment": "hm"})
    assert response.status_code == 400
    assert "The rating must be" in response.content.decode()
    asked.refresh_from_db()
    assert asked.answered_at is None and not ReportFact.objects.filter(kind=ReportFact.Kind.CSAT).exists()


def test_without_a_rating_field_is_refused(asked, client) -> None:
    assert client.post(csat_page(asked), {"comment": "no rating"}).status_code == 400
    asked.refresh_from_db()
    assert asked.answered_at is None


def test_an_unknown_token_is_404(asked, client) -> None:
    assert client.get(f"/csat/{uuid.uuid4()}/").status_code == 404
    assert client.post(f"/csat/{uuid.uuid4()}/", {"rating": "5"}).status_code == 404
    assert client.get("/csat/not-a-token/").status_code == 404


def test_the_form_is_csrf_protected(asked) -> None:
    browser = Client(enforce_csrf_checks=True)
    assert browser.post(csat_page(asked), {"rating": "5"}).status_code == 403
    asked.refresh_from_db()
    assert asked.answered_at is None
    browser.get(csat_page(asked))
    token = browser.cookies["csrftoken"].value
    assert browser.post(csat_page(asked), {"rating": "5", "csrfmiddlewaretoken": token}).status_code == 200
    asked.refresh_from_db()
    assert asked.rating == 5

