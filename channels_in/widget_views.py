"""The widget's HTTP API (cross-origin, JSON, bearer token): parse, call a service, answer.

No cookies are used, so CSRF does not apply; the visitor token in `Authorization` is the
credential, and CORS is answered only for the inbox's allowed sites.
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import wraps

from corsheaders.signals import check_request_enabled
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.shortcuts import render
from django.templatetags.static import static
from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from channels_in import widget
from channels_in.models import Visitor, WebChatChannel
from conversations.services import IncomingAttachment

logger = logging.getLogger(__name__)

_WIDGET_PATH = re.compile(r"^/widget/api/(?P<key>[^/]+)/")
# Types a browser may render in the widget itself; everything else (HTML and SVG above all)
# is only ever downloaded.
_INLINE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp"}


def cors_allow_widget_origin(sender: object, request: HttpRequest, **kwargs: object) -> bool:
    """django-cors-headers asks whether this request's Origin may read the answer."""
    match = _WIDGET_PATH.match(request.path)
    if match is None:
        return False
    origins = _origins_for_key(match.group("key"))
    return origins is not None and widget.origin_allowed_in(origins=origins, origin=request.headers.get("Origin", ""))


# CorsMiddleware runs in the event loop under ASGI and sends this signal synchronously, where
# the ORM may not run, and where waiting on the database stalls every request and socket of
# the process. So the lists live in memory: a key seen before is answered from there at once,
# and a list older than the TTL is refreshed by one worker thread in the background (a changed
# list applies within about the TTL). Only the first request for a key in a process waits for
# its lookup, and at most _FIRST_LOOKUP_TIMEOUT.
_ORIGINS_TTL_SECONDS = 10.0
_FIRST_LOOKUP_TIMEOUT = 3.0
_origins_cache: dict[str, tuple[float, list[str] | None]] = {}
_refreshing: set[str] = set()
_lookup_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="widget-cors")


def _origins_for_key(key: str) -> list[str] | None:
    cached = _origins_cache.get(key)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # a thread may wait for the database: look it up here and now
        origins = _origins_query(key)
        _origins_store(key, origins)
        return origins
    if cached is not None:  # in the event loop: the list we have, refreshed behind it
        if key not in _refreshing:
            _refreshing.add(key)
            _lookup_thread.submit(_origins_refresh, key)
        return cached[1]
    origins = _lookup_thread.submit(_origins_query_closing, key).result(timeout=_FIRST_LOOKUP_TIMEOUT)
    _origins_store(key, origins)
    return origins


def _origins_store(key: str, origins: list[str] | None) -> None:
    if len(_origins_cache) > 10_000:
        _origins_cache.clear()
    _origins_cache[key] = (time.monotonic() + _ORIGINS_TTL_SECONDS, origins)


def _origins_refresh(key: str) -> None:
    try:
        _origins_store(key, _origins_query_closing(key))
    except Exception:  # noqa: BLE001 - keep serving the list we have; the next request tries again
        logger.warning("widget origins lookup for %s failed", key, exc_info=True)
    finally:
        _refreshing.discard(key)


def _origins_query(key: str) -> list[str] | None:
    channel = WebChatChannel.objects.filter(public_key=key).only("allowed_origins").first()
    return channel.origins if channel is not None else None


def _origins_query_closing(key: str) -> list[str] | None:
    try:
        return _origins_query(key)
    finally:
        connection.close()  # this thread serves no request: nothing else would close it


check_request_enabled.connect(cors_allow_widget_origin, dispatch_uid="channels_in.widget_cors")


def _error(reason: str, status: int) -> JsonResponse:
    return JsonResponse({"error": reason}, status=status)


def widget_endpoint(methods: list[str], *, token: bool = True) -> Callable:
    """Public, cookie-less, JSON: resolves the channel (404), the Origin (403) and the token (403)."""

    def decorate(view: Callable) -> Callable:
        @login_not_required
        @csrf_exempt
        @require_http_methods(methods)
        @wraps(view)
        def wrapper(request: HttpRequest, public_key: str, **kwargs: object) -> HttpResponse:
            try:
                channel = widget.channel_get(public_key=public_key)
                origin = request.headers.get("Origin")
                # Browsers always send Origin cross-site; a foreign one is refused outright,
                # not just left unreadable by CORS.
                if origin is not None and not widget.origin_allowed(channel=channel, origin=origin):
                    raise widget.WidgetRefused("This site is not allowed to use this chat widget.")
                if token:
                    kwargs["visitor"] = widget.visitor_from_token(channel=channel, token=_bearer(request))
                return view(request, channel, **kwargs)
            except widget.WidgetRefused as refused:
                return _error(refused.reason, refused.status)

        return wrapper

    return decorate


def _bearer(request: HttpRequest) -> str:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def _json_body(request: HttpRequest) -> dict:
    if not request.body:
        return {}
    try:
        body = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        raise widget.WidgetRefused("The body is not valid JSON.", status=400) from None
    if not isinstance(body, dict):
        raise widget.WidgetRefused("The body must be a JSON object.", status=400)
    return body


@widget_endpoint(["GET"], token=False)
def config_view(request: HttpRequest, channel: WebChatChannel) -> HttpResponse:
    return JsonResponse(widget.config_json(channel=channel))


@widget_endpoint(["POST"], token=False)
def session_view(request: HttpRequest, channel: WebChatChannel) -> HttpResponse:
    body = _json_body(request)
    visitor = widget.visitor_session(
        channel=channel,
        token=str(body.get("token") or "") or None,
        identity=body.get("identity") or None,
        name=str(body.get("name") or ""),
        email=str(body.get("email") or ""),
    )
    return JsonResponse(widget.session_json(visitor=visitor))


@widget_endpoint(["GET", "POST"])
def messages_view(request: HttpRequest, channel: WebChatChannel, visitor: Visitor) -> HttpResponse:
    if request.method == "GET":
        after = request.GET.get("after")
        try:
            after_id = int(after) if after not in (None, "") else None
        except ValueError:
            return _error("after must be a message id.", 400)
        messages = widget.visitor_messages(visitor=visitor, after=after_id)
        return JsonResponse({"messages": [widget.message_json(m, channel=channel) for m in messages]})
    body = _json_body(request)
    message, created = widget.visitor_message_send(visitor=visitor, text=body.get("text"), client_id=body.get("client_id"))
    return JsonResponse({"message": widget.message_json(message, channel=channel)}, status=201 if created else 200)


@widget_endpoint(["POST"])
def attachments_view(request: HttpRequest, channel: WebChatChannel, visitor: Visitor) -> HttpResponse:
    upload = request.FILES.get("file")
    if upload is None:
        return _error("Send the file in the multipart field 'file'.", 400)
    if upload.size > settings.ATTACHMENT_MAX_BYTES:
        return _error(f"The file is larger than the {settings.ATTACHMENT_MAX_BYTES} byte limit.", 413)
    attachment = IncomingAttachment(filename=upload.name or "attachment", content=upload.read())
    message, created = widget.visitor_message_send(
        visitor=visitor, text=request.POST.get("text", ""), client_id=request.POST.get("client_id"), attachments=(attachment,)
    )
    return JsonResponse({"message": widget.message_json(message, channel=channel)}, status=201 if created else 200)


@widget_endpoint(["POST"])
def typing_view(request: HttpRequest, channel: WebChatChannel, visitor: Visitor) -> HttpResponse:
    widget.visitor_typing(visitor=visitor, typing=bool(_json_body(request).get("typing")))
    return HttpResponse(status=204)


@widget_endpoint(["POST"])
def seen_view(request: HttpRequest, channel: WebChatChannel, visitor: Visitor) -> HttpResponse:
    widget.visitor_seen(visitor=visitor, message_id=_json_body(request).get("message_id"))
    return HttpResponse(status=204)


@widget_endpoint(["GET"], token=False)
def file_view(request: HttpRequest, channel: WebChatChannel, file_uuid: str) -> HttpResponse:
    attachment = widget.attachment_for_signed_url(channel=channel, file_uuid=file_uuid, sig=request.GET.get("sig", ""))
    inline = attachment.content_type in _INLINE_TYPES
    response = FileResponse(
        attachment.file.open("rb"),
        as_attachment=not inline,
        filename=attachment.filename,
        content_type=attachment.content_type if inline else "application/octet-stream",
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "sandbox; default-src 'none'"
    # The widget's page lives on another site and shows images from here.
    response["Cross-Origin-Resource-Policy"] = "cross-origin"
    response["Cache-Control"] = f"private, max-age={widget.FILE_URL_MAX_AGE_SECONDS}"
    response["Referrer-Policy"] = "no-referrer"
    return response



@login_not_required
@require_http_methods(["GET"])
def preview_view(request: HttpRequest, public_key: str) -> HttpResponse:
    """A page with nothing but the embed snippet: try the widget as a customer would."""
    try:
        channel = widget.channel_get(public_key=public_key)
    except widget.WidgetRefused as refused:
        return HttpResponse(str(refused), status=refused.status, content_type="text/plain")
    script_url = request.build_absolute_uri(static("widget/widget.js"))
    snippet = f'<script src="{script_url}" data-key="{channel.public_key}" async></script>'
    response = render(request, "widget/preview.html", {"channel": channel, "script_url": script_url, "snippet": snippet})
    response["Content-Security-Policy"] = "default-src 'self'; script-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:"
    return response
