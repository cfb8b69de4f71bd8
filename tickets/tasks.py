"""Thin tasks for the `sla` queue. The sweep is periodic (beat): timers are due-times in the
database, never ETA/countdown tasks, so a lost or repeated run changes nothing."""
from __future__ import annotations

from celery import shared_task


@shared_task(name="tickets.sla_sweep", ignore_result=True)
def sla_sweep_task() -> None:
    from tickets.sla import sla_sweep

    sla_sweep()
