"""Refuse oversize webhook bodies up front with 413 and a reason, before anything is read."""
from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

WEBHOOK_PREFIXES = ("/anymail/", "/webhooks/", "/twilio/")


class WebhookBodyLimitMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith(WEBHOOK_PREFIXES):
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                return HttpResponse("Invalid Content-Length.", status=400, content_type="text/plain")
            limit = settings.WEBHOOK_MAX_BODY_BYTES
            if length > limit:
                return HttpResponse(
                    f"Request body of {length} bytes exceeds the {limit} byte limit for webhooks.",
                    status=413,
                    content_type="text/plain",
                )
        return self.get_response(request)
