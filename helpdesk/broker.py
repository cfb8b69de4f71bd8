"""The Redis broker transport, with one fix: a failed ack never wedges a worker.

kombu's Redis QoS acks by first removing the message from Redis's `unacked` index and only
then releasing the prefetch slot. When Redis times out in between (a stall, a failover), the
slot is never released: with our prefetch of one the worker stays up, connected and idle,
and consumes nothing again (seen in the hung-Redis integration test). Here the slot is
released whatever Redis answered. The message itself is not lost either way: if its entry is
still in `unacked`, Redis hands it out again after the visibility timeout, and our tasks are
idempotent. And using a channel whose connection Redis already dropped fails as a lost
connection, which the worker survives, not as the AttributeError kombu raises there.
"""
from __future__ import annotations

from kombu.transport import redis, virtual
from redis.exceptions import ConnectionError as RedisConnectionError


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

    def _connparams(self, asynchronous: bool = False) -> dict:
        """After Redis drops the worker's connection, a task finishing late still acks on its
        old channel, and closing that channel restores its unacked messages: both make a new
        client from a connection that is gone, where kombu fails with an AttributeError that
        the worker takes as unrecoverable and exits (seen on a Redis restart). It is a lost
        connection: raised as one, kombu logs it or ignores it and the worker reconnects. The
        messages come back from `unacked` after the visibility timeout."""
        if self.connection is None or self.connection.client is None:
            raise RedisConnectionError("the broker connection is closed")
        return super()._connparams(asynchronous=asynchronous)


class Transport(redis.Transport):
    Channel = Channel


def transport_for(url: str) -> str | None:
    """The transport for a broker URL: ours for Redis, kombu's choice for anything else."""
    return "helpdesk.broker:Transport" if url.startswith(("redis://", "rediss://")) else None
