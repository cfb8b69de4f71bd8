"""Thin periodic tasks. Timers are due-times in the database, never ETA/countdown tasks, so
a lost or repeated run changes nothing: the SLA sweep on the `sla` queue, routing on `default`."""
from __future__ import annotations

from celery import shared_task


@shared_task(name="tickets.sla_sweep", ignore_result=True)
def sla_sweep_task() -> None:
    from tickets.sla import sla_sweep

    sla_sweep()


@shared_task(name="tickets.routing_assign", ignore_result=True)
def routing_assign_task() -> None:
    from tickets.routing import routing_assign_waiting

    routing_assign_waiting()
