"""Twilio's SMS webhooks: incoming messages and per-message status callbacks.

Each SMS channel has its own URLs (its uuid), so the auth token that signs a post is known
before anything is read. A post is trusted only once its X-Twilio-Signature matches; then
an incoming message is stored raw (once per MessageSid) and processed by a task, and a
status callback moves its message's delivery status forward.
"""
from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from twilio.request_validator import RequestValidator

from channels_in import sms
from channels_in.models import SmsChannel
from channels_in.services import SMS_PROVIDER, inbound_event_record

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
_FORM = "application/x-www-form-urlencoded"


def _text(reason: str, status: int) -> HttpResponse:
    return HttpResponse(reason, status=status, content_type="text/plain; charset=utf-8")


def _params(request: HttpRequest) -> dict[str, str]:
    # Twilio adds parameters without notice: the signature covers whatever was posted.
    # (QueryDict.get would give the last of repeated values; we store and sign the first.)
    return {key: values[0] if values else "" for key, values in request.POST.lists()}


def _signature_refusal(request: HttpRequest, channel: SmsChannel) -> str | None:
    """Why the post is not from Twilio for this channel, or None when its signature holds.

    The URL is the one Twilio called, query string included: behind a TLS proxy Django must
    know the public scheme and host (SECURE_PROXY_SSL_HEADER, ALLOWED_HOSTS) for it to match.
    """
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature:
        return "Missing X-Twilio-Signature header."
    if not RequestValidator(channel.auth_token).validate(request.build_absolute_uri(), _params(request), signature):
        return "X-Twilio-Signature does not match: wrong auth token, URL or parameters."
    return None


@csrf_exempt
@login_not_required
@require_POST
def sms_inbound(request: HttpRequest, channel_uuid: str) -> HttpResponse:
    channel = get_object_or_404(SmsChannel, uuid=channel_uuid)
    raw = request.body  # read first: the exact bytes are what we store
    if request.content_type != _FORM:
        return _text(f"Expected {_FORM}, got {request.content_type or 'no content type'}.", 400)
    refusal = _signature_refusal(request, channel)
    if refusal:
        return _text(refusal, 403)
    params = _params(request)
    missing = [name for name in ("MessageSid", "From") if not params.get(name)]
    if missing:
        return _text(f"Missing Twilio parameter(s): {', '.join(missing)}.", 400)
    inbound_event_record(
        provider=SMS_PROVIDER,
        event_id=params["MessageSid"],
        raw=raw,
        recipient=params.get("To", ""),
        meta={"channel": channel.pk},
    )
    # An empty TwiML answer: no auto-reply from us (Twilio itself answers STOP and HELP).
    return HttpResponse(EMPTY_TWIML, content_type="text/xml; charset=utf-8")


@csrf_exempt
@login_not_required
@require_POST
def sms_status(request: HttpRequest, channel_uuid: str) -> HttpResponse:
    channel = get_object_or_404(SmsChannel, uuid=channel_uuid)
    refusal = _signature_refusal(request, channel)
    if refusal:
        return _text(refusal, 403)
    params = _params(request)
    message = sms.sms_status_message(channel=channel, message_id=request.GET.get("m"), message_sid=params.get("MessageSid", ""))
    if message is not None:
        sms.sms_status_apply(message=message, params=params)
    # 200 for unknown or stale callbacks too, so Twilio stops retrying them.
    return HttpResponse(status=200)
