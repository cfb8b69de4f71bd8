"""The Redis broker transport, with one fix: a failed ack never wedges a worker.

kombu's Redis QoS acks by first removing the message from Redis's `unacked` index and only
then releasing the prefetch slot. When Redis times out in between (a stall, a failover), the
slot is never released: with our prefetch of one the worker stays up, connected and idle,
and consumes nothing again (seen in the hung-Redis integration test). Here the slot is
released whatever Redis answered. The message itself is not lost either way: if its entry is
still in `unacked`, Redis hands it out again after the visibility timeout, and our tasks are
idempotent.
"""
from __future__ import annotations

from kombu.transport import redis, virtual


class QoS(redis.QoS):
    def ack(self, delivery_tag: str) -> None:
        try:
            super().ack(delivery_tag)
        except Exception:
            virtual.QoS.ack(self, delivery_tag)  # release the slot, then let kombu log the failure
            raise

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        try:
            super().reject(delivery_tag, requeue=requeue)
        except Exception:
            virtual.QoS.ack(self, delivery_tag)
            raise


class Channel(redis.Channel):
    QoS = QoS


class Transport(redis.Transport):
    Channel = Channel


def transport_for(url: str) -> str | None:
    """The transport for a broker URL: ours for Redis, kombu's choice for anything else."""
    return "helpdesk.broker:Transport" if url.startswith(("redis://", "rediss://")) else None
