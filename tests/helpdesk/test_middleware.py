"""The middleware chain under ASGI: no thread hop before the view, and the same answers."""
from __future__ import annotations

import uuid

import pytest
from asgiref.sync import async_to_sync, iscoroutinefunction, sync_to_async
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.base import BaseHandler
from django.test import AsyncClient, RequestFactory
from django.urls import resolve, reverse

from helpdesk.middleware import CsrfMiddleware, LoginRequiredMiddleware
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _run(coroutine_function, *args):  # noqa: ANN001, ANN202
    return async_to_sync(coroutine_function)(*args)


def test_asgi_chain_has_no_thread_hop_between_middleware(monkeypatch):
    adapted: list[str] = []
    original = BaseHandler.adapt_method_mode

    def spy(self, is_async, method, method_is_async=None, debug=False, name=None):  # noqa: ANN001, ANN202
        result = original(self, is_async, method, method_is_async, debug, name)
        if result is not method:
            adapted.append(name or method.__qualname__)
        return result

    monkeypatch.setattr(BaseHandler, "adapt_method_mode", spy)
    ASGIHandler()

    assert adapted == []


@pytest.mark.parametrize("middleware", [CsrfMiddleware, LoginRequiredMiddleware])
def test_view_checks_pass_a_webhook_on_the_loop_and_check_others_in_a_thread(middleware, monkeypatch):
    async def get_response(request):  # noqa: ANN001, ANN202
        raise AssertionError("not reached")

    instance = middleware(get_response)
    assert iscoroutinefunction(instance.process_view)
    hops: list[str] = []
    real_sync_to_async = sync_to_async
    monkeypatch.setattr("helpdesk.middleware.sync_to_async", lambda fn: hops.append(fn.__name__) or real_sync_to_async(fn))
    request = RequestFactory().get("/")
    request.user = UserFactory()

    assert _run(instance.process_view, request, resolve(reverse("postmark_inbound")).func, (), {}) is None
    assert hops == []
    assert _run(instance.process_view, request, resolve(reverse("dashboard")).func, (), {}) is None
    assert hops == ["process_view"]


def test_static_file_is_served_on_the_async_path(settings):
    response = _run(AsyncClient().get, "/static/widget/widget.js")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    assert b"".join(response.streaming_content) == (settings.BASE_DIR / "static" / "widget" / "widget.js").read_bytes()


def test_oversize_webhook_gets_413_on_the_async_path(settings):
    settings.WEBHOOK_MAX_BODY_BYTES = 10_000

    response = _run(AsyncClient().post, f"/twilio/sms/{uuid.uuid4()}/", b"x" * 20_000, "application/x-www-form-urlencoded")

    assert response.status_code == 413
    assert b"exceeds the 10000 byte limit" in response.content


def test_anonymous_dashboard_request_is_sent_to_login_on_the_async_path():
    response = _run(AsyncClient().get, reverse("dashboard"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_csrf_still_refuses_a_form_post_without_a_token_on_the_async_path():
    user = UserFactory()
    client = AsyncClient(enforce_csrf_checks=True)
    _run(client.aforce_login, user)

    response = _run(client.post, reverse("logout"))

    assert response.status_code == 403
    assert b"CSRF" in response.content
