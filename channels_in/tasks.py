"""Thin, idempotent tasks: take ids, call one service. No retries here: a failed run
leaves its row due, and the sweeper enqueues it again (DESIGN.md: no ETA tasks)."""
from __future__ import annotations

from celery import shared_task


@shared_task(name="channels_in.inbound_process", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def inbound_process_task(event_id: int) -> None:
    from channels_in.services import inbound_event_process

    inbound_event_process(event_id=event_id)


@shared_task(name="channels_in.outbound_deliver", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def outbound_deliver_task(message_id: int) -> None:
    from channels_in.services import outbound_deliver

    outbound_deliver(message_id=message_id)


@shared_task(name="channels_in.sweep", ignore_result=True)
def sweep_task() -> None:
    from channels_in.services import sweep

    sweep()
