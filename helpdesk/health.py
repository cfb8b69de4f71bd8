"""/healthz: database, Redis and Celery workers, for load balancers and operators."""
from __future__ import annotations

import time

import redis
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET


def _check_database() -> dict:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return {"ok": True}


def _check_redis() -> dict:
    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    client.ping()
    return {"ok": True}


def _check_workers() -> dict:
    from helpdesk.celery import app

    replies = app.control.ping(timeout=1.0) or []
    workers = sorted(name for reply in replies for name in reply)
    return {"ok": bool(workers), "workers": workers}


@require_GET
@login_not_required
def healthz(request: HttpRequest) -> JsonResponse:
    checks: dict[str, dict] = {}
    for name, check in (("database", _check_database), ("redis", _check_redis), ("workers", _check_workers)):
        started = time.monotonic()
        try:
            checks[name] = check()
        except Exception as err:  # noqa: BLE001 - a health check reports, it does not raise
            checks[name] = {"ok": False, "error": f"{type(err).__name__}: {err}"}
        checks[name]["ms"] = round((time.monotonic() - started) * 1000, 1)
        if name == "redis" and not checks[name]["ok"]:
            checks["workers"] = {"ok": False, "error": "Redis unreachable", "ms": 0}
            break
    ok = all(c["ok"] for c in checks.values())
    return JsonResponse({"ok": ok, "checks": checks}, status=200 if ok else 503)
