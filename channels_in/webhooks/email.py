"""anymail's webhook views with what they lack: a reason with every 400, and replay limits.

Mounted at anymail's own URLs (before `include("anymail.urls")`), so provider setup follows
anymail's documentation unchanged.
"""
from __future__ import annotations

import time

from anymail.exceptions import AnymailAPIError, AnymailConfigurationError, AnymailWebhookValidationFailure
from anymail.webhooks.amazon_ses import AmazonSESInboundWebhookView, AmazonSESTrackingWebhookView
from anymail.webhooks.mailgun import MailgunInboundWebhookView, MailgunTrackingWebhookView
from anymail.webhooks.postmark import PostmarkInboundWebhookView, PostmarkTrackingWebhookView
from django.conf import settings
from django.http import HttpRequest, HttpResponse

from channels_in.adapters.email import POSTMARK_JSON, postmark_headers, postmark_inbound_check
from channels_in.services import inbound_event_record

# AnymailAPIError is how the SES view reports an unparsable SNS body.
_MALFORMED = (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError, AnymailConfigurationError, AnymailAPIError)


class ClearErrorsMixin:
    """400 with the reason for a bad signature or a malformed body; nothing is stored.

    Only validation and parsing are caught: an error while storing stays a 500, so the
    provider retries instead of dropping the message.
    """

    def post(self, request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        try:
            self.run_validators(request)
            events = self.parse_events(request)
        except AnymailWebhookValidationFailure as err:
            if isinstance(err.__cause__, _MALFORMED):  # anymail found no signature block to check
                return _bad_request(f"Malformed {self.esp_name} payload: {err}")
            return _bad_request(f"Webhook refused: {err}")
        except _MALFORMED as err:
            return _bad_request(f"Malformed {self.esp_name} payload: {type(err).__name__}: {err}")
        self.events_received(request, events)
        return HttpResponse()

    def events_received(self, request: HttpRequest, events: list) -> None:
        for event in events:
            self.signal.send(sender=self.__class__, event=event, esp_name=self.esp_name)


def _bad_request(reason: str) -> HttpResponse:
    return HttpResponse(reason[:500], status=400, content_type="text/plain; charset=utf-8")


class MailgunFreshnessMixin:
    """anymail checks Mailgun's signature but not its age: a captured post replays forever."""

    def validate_request(self, request: HttpRequest) -> None:
        raw = request.POST.get("timestamp") if request.content_type != "application/json" else None
        if raw is None:
            return  # JSON tracking events: status only moves forward, replays are no-ops
        try:
            age = abs(time.time() - int(raw))
        except ValueError as err:
            raise AnymailWebhookValidationFailure("Mailgun timestamp is not a number") from err
        if age > settings.HELPDESK["MAILGUN_MAX_AGE_SECONDS"]:
            raise AnymailWebhookValidationFailure(f"Mailgun timestamp is {int(age)} s old: refused as a replay")


class MailgunInboundView(ClearErrorsMixin, MailgunFreshnessMixin, MailgunInboundWebhookView):
    pass


class MailgunTrackingView(ClearErrorsMixin, MailgunTrackingWebhookView):
    pass


class PostmarkInboundView(ClearErrorsMixin, PostmarkInboundWebhookView):
    """Postmark's post is checked and stored as received; the worker builds the email from it.

    Building it here (anymail's MIME construction and its re-serialisation) cost milliseconds
    of CPU per post while Postmark waited. A post without sender or recipients, which anymail
    would accept, can never become a message and is refused.
    """

    def parse_events(self, request: HttpRequest) -> list[dict]:
        return [postmark_inbound_check(request.body)]

    def events_received(self, request: HttpRequest, events: list[dict]) -> None:
        for payload in events:
            envelope_sender, _ = postmark_headers(payload)
            inbound_event_record(
                provider="postmark",
                event_id=payload.get("MessageID") or None,
                raw=request.body,
                recipient=payload.get("OriginalRecipient") or "",
                meta={"esp": self.esp_name, "format": POSTMARK_JSON, "envelope_sender": envelope_sender},
            )


class PostmarkTrackingView(ClearErrorsMixin, PostmarkTrackingWebhookView):
    pass


class SNSChallengeMixin(ClearErrorsMixin):
    """Amazon SNS sends basic auth only after a 401 challenge (as anymail's own view does)."""

    def post(self, request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        if self.basic_auth and not request.META.get("HTTP_AUTHORIZATION"):
            response = HttpResponse(status=401)
            response["WWW-Authenticate"] = 'Basic realm="Anymail WEBHOOK_SECRET"'
            return response
        return super().post(request, *args, **kwargs)


class AmazonSESInboundView(SNSChallengeMixin, AmazonSESInboundWebhookView):
    pass


class AmazonSESTrackingView(SNSChallengeMixin, AmazonSESTrackingWebhookView):
    pass
