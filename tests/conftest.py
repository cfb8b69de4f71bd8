from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpdesk.celery import app as celery_app

# The chaos suite starts a whole stack and restarts PostgreSQL: only `make chaos` runs it.
collect_ignore = [] if os.environ.get("HELPDESK_CHAOS") else ["chaos"]


class TaskQueue:
    """Captures tasks enqueued by name and runs their real code when drained."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, tuple]] = []

    def send_task(self, name: str, args: tuple | list = (), **kwargs: object) -> None:
        self.sent.append((name, tuple(args)))

    def names(self) -> list[str]:
        return [name for name, _ in self.sent]

    def drain(self) -> int:
        celery_app.loader.import_default_modules()  # registers the tasks (autodiscovery is lazy)
        ran = 0
        while self.sent:
            name, args = self.sent.pop(0)
            celery_app.tasks[name](*args)
            ran += 1
        return ran


@pytest.fixture(autouse=True)
def tasks(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[TaskQueue]:
    queue = TaskQueue()
    if request.node.get_closest_marker("integration") is None:
        monkeypatch.setattr(celery_app, "send_task", queue.send_task)
    yield queue


def pytest_configure(config: pytest.Config) -> None:
    # WhiteNoise serves from STATIC_ROOT as well as the finders and warns on every request
    # while `collectstatic` (part of `make run`) has not created it on this checkout yet.
    from django.conf import settings

    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path) -> None:  # noqa: ANN001
    settings.MEDIA_ROOT = tmp_path / "media"
