"""Thin periodic tasks. Timers are due-times in the database, never ETA/countdown tasks, so
a lost or repeated run changes nothing: the SLA sweep on the `sla` queue, routing and the
snooze wake-up on `default`."""
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


@shared_task(name="tickets.snooze_wake", ignore_result=True)
def snooze_wake_task() -> None:
    from tickets.snooze import snooze_wake_due

    snooze_wake_due()
