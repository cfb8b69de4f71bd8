"""The public page a customer answers the satisfaction question on (the link in the email or
chat message). No login: the unguessable token in the URL is the customer's key.

A GET never records anything (mail scanners and link previews follow links); the form POSTs,
CSRF-protected, and the first answer wins.
"""
from __future__ import annotations

import uuid

from django.contrib.auth.decorators import login_not_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from conversations.services import ApplicationError
from tickets.csat import RATING_WORDS, csat_answer_record, csat_rating_parse, csat_survey_by_token
from tickets.models import CsatSurvey


@login_not_required
@never_cache
@require_http_methods(["GET", "POST"])
def csat_survey(request: HttpRequest, token: uuid.UUID) -> HttpResponse:
    survey = csat_survey_by_token(token)
    if survey is None:
        raise Http404("No such survey.")
    if survey.answered_at is not None:
        return _page(request, survey, state="answered")
    if request.method == "GET":
        return _page(request, survey, state="form", selected=_preselected(request.GET.get("r")))
    try:
        rating = csat_rating_parse(request.POST.get("rating", ""))
        recorded = csat_answer_record(survey=survey, rating=rating, comment=request.POST.get("comment", ""))
    except ApplicationError as err:
        return _page(request, survey, state="form", error=str(err), comment=request.POST.get("comment", ""), status=400)
    if not recorded:
        # Another answer (a second tab, a double submit) got there first: show that one.
        survey.refresh_from_db()
        return _page(request, survey, state="answered")
    return _page(request, survey, state="thanks")


def _preselected(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return csat_rating_parse(value)
    except ApplicationError:
        return None  # a mangled link still opens the form, just without a choice


def _page(request: HttpRequest, survey: CsatSurvey, *, state: str, selected: int | None = None, error: str = "",
          comment: str = "", status: int = 200) -> HttpResponse:
    context = {
        "survey": survey,
        "inbox_name": survey.ticket.conversation.inbox.name,
        "subject": survey.ticket.conversation.subject,
        "state": state,
        "ratings": list(RATING_WORDS.items()),
        "selected": selected,
        "error": error,
        "comment": comment,
    }
    response = render(request, "csat/survey.html", context, status=status)
    # The token is the key to the page: keep it out of search engines.
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response
