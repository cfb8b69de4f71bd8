"""Middleware that runs on the event loop as well as in a thread.

Under ASGI Django adapts every sync-only middleware with a thread hop, and the chain crosses
back to the loop for the async-capable ones after it. With every middleware async-capable a
request crosses into a thread once, for the (sync) view. The view checks (CSRF, login) are
sync because they may read the session; for the views they cannot apply to (webhooks, the
widget, the health check) they answer on the loop.
"""
from __future__ import annotations

from collections.abc import Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.contrib.auth.middleware import LoginRequiredMiddleware as DjangoLoginRequiredMiddleware
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import CsrfViewMiddleware
from whitenoise.middleware import WhiteNoiseMiddleware

WEBHOOK_PREFIXES = ("/anymail/", "/webhooks/", "/twilio/")


class _SyncAndAsync:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)


class WebhookBodyLimitMiddleware(_SyncAndAsync):
    """Refuse oversize webhook bodies up front with 413 and a reason, before anything is read."""

    def __call__(self, request: HttpRequest):
        refusal = _oversize_refusal(request)
        if iscoroutinefunction(self):
            return self._acall(request, refusal)
        return refusal or self.get_response(request)

    async def _acall(self, request: HttpRequest, refusal: HttpResponse | None) -> HttpResponse:
        return refusal or await self.get_response(request)


def _oversize_refusal(request: HttpRequest) -> HttpResponse | None:
    if not request.path.startswith(WEBHOOK_PREFIXES):
        return None
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
    return None


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise, which is sync-only, made async-capable: a request that is not for a static
    file passes straight on, and only serving a file (which opens it) runs in a thread."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable, **kwargs: object) -> None:
        super().__init__(get_response, **kwargs)
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest):
        if iscoroutinefunction(self):
            return self._acall(request)
        return super().__call__(request)

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        if self.autorefresh:  # development: looks on disk for each request
            static_file = await sync_to_async(self.find_file)(request.path_info)
        else:
            static_file = self.files.get(request.path_info)
        if static_file is not None:
            return await sync_to_async(self.serve)(static_file, request)
        return await self.get_response(request)


class _ViewCheckOnLoop:
    """A sync `process_view` that, under ASGI, skips its thread hop for views it exempts."""

    def __init__(self, get_response: Callable) -> None:
        super().__init__(get_response)
        if iscoroutinefunction(self):  # MiddlewareMixin marks the async mode
            self.process_view = self._process_view_async

    @staticmethod
    def exempts(view_func: Callable) -> bool:
        raise NotImplementedError

    async def _process_view_async(self, request: HttpRequest, view_func: Callable, view_args: tuple, view_kwargs: dict) -> HttpResponse | None:
        if self.exempts(view_func):
            return None
        return await sync_to_async(super().process_view)(request, view_func, view_args, view_kwargs)


class CsrfMiddleware(_ViewCheckOnLoop, CsrfViewMiddleware):
    @staticmethod
    def exempts(view_func: Callable) -> bool:
        return getattr(view_func, "csrf_exempt", False)


class LoginRequiredMiddleware(_ViewCheckOnLoop, DjangoLoginRequiredMiddleware):
    @staticmethod
    def exempts(view_func: Callable) -> bool:
        return not getattr(view_func, "login_required", True)
