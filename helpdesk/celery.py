"""The Celery app. Workers: `celery -A helpdesk worker -Q inbound,outbound,sla,default`."""
from __future__ import annotations

import os

from celery import Celery
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "helpdesk.settings.base")

app = Celery("helpdesk")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect(dispatch_uid="helpdesk.db_task_start")
@task_postrun.connect(dispatch_uid="helpdesk.db_task_end")
def _db_connections_tidy(task: object = None, **kwargs: object) -> None:
    """Around a task as around a request: a connection past its age (with a pool: every one)
    goes back, and the next use checks it first (CONN_HEALTH_CHECKS). A task that fails on a
    broken connection (the database restarted) is retried on a good one. Eager tasks run
    inside their caller's request or transaction: left alone."""
    from django.db import close_old_connections

    if getattr(getattr(task, "request", None), "is_eager", False):
        return
    close_old_connections()
