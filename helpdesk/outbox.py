"""The local outbox: mail the file backend wrote instead of sending, for people trying the desk."""
from __future__ import annotations

import email
import email.policy
from pathlib import Path

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

OUTBOX_LIMIT = 50
HEADERS = ("From", "To", "Reply-To", "Subject", "Date", "Message-ID", "In-Reply-To", "References")


def outbox_messages(directory: Path, limit: int = OUTBOX_LIMIT) -> list[dict[str, str]]:
    """The newest messages first. The file backend writes one .log file per connection."""
    files = sorted(directory.glob("*.log"), key=lambda p: p.stat().st_mtime, reverse=True) if directory.is_dir() else []
    found: list[dict[str, str]] = []
    for path in files:
        separator = "-" * 79
        for chunk in reversed(path.read_text(errors="replace").split(separator)):
            if not chunk.strip():
                continue
            message = email.message_from_string(chunk.strip(), policy=email.policy.default)
            body = message.get_body(("plain",))
            found.append({key.lower().replace("-", "_"): str(message.get(key, "")) for key in HEADERS}
                         | {"body": body.get_content() if body else ""})
            if len(found) >= limit:
                return found
    return found


def outbox(request: HttpRequest) -> HttpResponse:
    if settings.EMAIL_BACKEND != "django.core.mail.backends.filebased.EmailBackend":
        raise Http404("The local outbox is used only while no email provider is configured.")
    if not request.user.is_staff:
        raise PermissionDenied
    return render(request, "outbox.html", {"messages": outbox_messages(Path(settings.EMAIL_FILE_PATH))})
