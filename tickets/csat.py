"""Customer satisfaction (CSAT): one 1-5 question per solved conversation, asked on the channel
the customer last wrote on, and its one answer.

Email and web chat carry a link to a public page (tickets/csat_views.py) that records the
answer on POST; SMS asks for a digit, and the customer's next text on that conversation that
is one (channels_in/sms.py) is the answer. Either way `csat_answer_record` writes it once.
"""
from __future__ import annotations

import re
import uuid
from datetime import datetime

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from conversations import realtime
from conversations.models import Channel, Conversation, Message
from conversations.selectors import reply_channels
from conversations.services import ApplicationError, automated_reply_create, system_event_create
from tickets.models import CsatSurvey, ReportFact, Ticket

RATING_MIN, RATING_MAX = 1, 5
COMMENT_MAX_CHARS = 2000
RATING_WORDS = {1: "Poor", 2: "Fair", 3: "Good", 4: "Very good", 5: "Great"}
SMS_QUESTION = "How did we do? Reply 1 (poor) to 5 (great)."

# "4", "4.", "5!", "4/5", "4 - thanks", "2, it took a week": a digit first, then (after a
# space) an optional comment. "45", "3.5", "1st" or "2nd try failed" are not ratings.
_SMS_ANSWER = re.compile(
    r"^\s*(?P<rating>[1-5])(?:\s*/\s*5)?\s*[.!)]?\s*$"
    r"|^\s*(?P<rating_c>[1-5])(?:\s*/\s*5)?\s*[.,:;!)\-–]?\s+(?P<comment>\S.*)$",
    re.DOTALL,
)


def csat_enabled() -> bool:
    return bool(settings.HELPDESK.get("CSAT_ENABLED", True))


# Selectors -------------------------------------------------------------------------------

def csat_url(survey: CsatSurvey, *, rating: int | None = None) -> str:
    """The public answer page; with a rating the page opens with it selected (nothing recorded)."""
    url = settings.SITE_URL + reverse("csat_survey", kwargs={"token": survey.token})
    return f"{url}?r={rating}" if rating is not None else url


def csat_channel(conversation: Conversation) -> str | None:
    """The channel to ask on: the one of the customer's latest message, if the desk can still
    reach them there (an inbox config, an address, no SMS opt-out), else None."""
    latest = (
        Message.objects.filter(conversation=conversation, kind=Message.Kind.INBOUND)
        .order_by("-created_at", "-id").values_list("channel", flat=True).first()
    )
    if latest not in (Channel.EMAIL, Channel.SMS, Channel.WEBCHAT):
        return None
    option = next((o for o in reply_channels(conversation) if o.channel == latest), None)
    return latest if option is not None and option.available else None


def csat_survey_by_token(token: uuid.UUID) -> CsatSurvey | None:
    return CsatSurvey.objects.select_related("ticket__conversation__inbox").filter(token=token).first()


def csat_sms_pending(*, conversation_id: int) -> CsatSurvey | None:
    """The SMS question an incoming text on this conversation may answer, row-locked.

    Only the customer's first text after the question counts, and only while the ticket is
    still solved: once they wrote something else, a later digit means whatever it says.
    Call inside transaction.atomic().
    """
    survey = (
        CsatSurvey.objects.select_for_update().select_related("ticket")
        .filter(ticket_id=conversation_id, channel=Channel.SMS, answered_at__isnull=True).first()
    )
    if survey is None or survey.ticket.status != Ticket.Status.SOLVED:
        return None
    later = Message.objects.filter(conversation_id=conversation_id, kind=Message.Kind.INBOUND, channel=Channel.SMS)
    later = later.filter(pk__gt=survey.message_id) if survey.message_id else later.filter(created_at__gt=survey.asked_at)
    return None if later.exists() else survey


def csat_sms_answer_parse(text: str) -> tuple[int, str] | None:
    """(rating, comment) when a text is a rating, else None."""
    match = _SMS_ANSWER.match(text or "")
    if match is None:
        return None
    rating = int(match.group("rating") or match.group("rating_c"))
    return rating, (match.group("comment") or "").strip()[:COMMENT_MAX_CHARS]


# Services --------------------------------------------------------------------------------

def csat_request(*, ticket: Ticket, by: AbstractBaseUser | None = None) -> CsatSurvey | None:
    """Ask the customer to rate a conversation that was just solved. Call inside the
    transaction that solved it: the question is queued in the outbox and sent after commit.

    Asked once per conversation, ever: a re-solve after a reopening finds the survey and
    asks nothing (the existing survey is returned). None when nothing is asked: CSAT off,
    not solved, merged away, or the customer's channel cannot reach them (e.g. SMS STOP).
    """
    if not csat_enabled() or ticket.status != Ticket.Status.SOLVED:
        return None
    existing = CsatSurvey.objects.filter(ticket_id=ticket.pk).first()
    if existing is not None:
        return existing
    conversation = Conversation.objects.select_related("inbox", "contact").get(pk=ticket.pk)
    if conversation.merged_into_id is not None:
        return None
    channel = csat_channel(conversation)
    if channel is None:
        return None
    try:
        with transaction.atomic():
            survey = CsatSurvey.objects.create(ticket_id=ticket.pk, token=uuid.uuid4(), channel=channel, asked_at=timezone.now())
            survey.message = automated_reply_create(conversation=conversation, text=csat_question(survey), channel=channel)
            survey.save(update_fields=["message"])
    except IntegrityError:
        # Asked meanwhile by another transaction (the ticket row lock makes this rare).
        return CsatSurvey.objects.filter(ticket_id=ticket.pk).first()
    except ApplicationError:
        return None  # the channel refused after all (an opt-out between our check and the write)
    return survey


def csat_question(survey: CsatSurvey) -> str:
    if survey.channel == Channel.SMS:
        return SMS_QUESTION
    return (
        "Your conversation with us is solved. How did we do?\n"
        f"Rate it from 1 (poor) to 5 (great), and tell us more if you like: {csat_url(survey)}"
    )


def csat_rating_parse(value: object) -> int:
    """A rating from form input; raises ApplicationError with the reason when it is not 1-5."""
    try:
        rating = int(str(value).strip())
    except (TypeError, ValueError):
        raise ApplicationError(f"The rating must be a whole number from {RATING_MIN} to {RATING_MAX}.") from None
    if not RATING_MIN <= rating <= RATING_MAX:
        raise ApplicationError(f"The rating must be from {RATING_MIN} to {RATING_MAX}, not {rating}.")
    return rating


def csat_answer_record(*, survey: CsatSurvey, rating: int, comment: str = "", at: datetime | None = None) -> bool:
    """Record the customer's answer once: the first one wins, later ones change nothing.

    Writes the csat ReportFact (dimensions as they are now), a timeline line and a
    conversation.updated event. Returns True when this call recorded the answer.
    """
    rating = csat_rating_parse(rating)
    comment = (comment or "").strip()
    if len(comment) > COMMENT_MAX_CHARS:
        raise ApplicationError(f"The comment is too long: at most {COMMENT_MAX_CHARS} characters.")
    at = at or timezone.now()
    with transaction.atomic():
        changed = CsatSurvey.objects.filter(pk=survey.pk, answered_at__isnull=True).update(
            rating=rating, comment=comment, answered_at=at)
        if not changed:
            return False
        ticket = Ticket.objects.select_related("conversation").get(pk=survey.ticket_id)
        conversation = ticket.conversation
        try:
            with transaction.atomic():
                ReportFact.objects.create(
                    kind=ReportFact.Kind.CSAT, at=at, rating=rating, ticket=ticket, inbox_id=conversation.inbox_id,
                    channel=survey.channel, team_id=ticket.team_id, agent_id=ticket.assignee_id, priority=ticket.priority,
                )
        except IntegrityError:
            pass  # the unique constraint already holds this ticket's answer
        text = f"The customer rated this conversation {rating}/{RATING_MAX}" + (f": {comment}" if comment else ".")
        line = system_event_create(conversation=conversation, text=text)
        realtime.publish(type="message.created", inbox_id=conversation.inbox_id, conversation_id=conversation.pk, message_id=line.pk)
        realtime.publish(type="conversation.updated", inbox_id=conversation.inbox_id, conversation_id=conversation.pk)
    survey.rating, survey.comment, survey.answered_at = rating, comment, at
    return True
