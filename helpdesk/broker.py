"""The Redis broker transport, with one fix: a failed ack never wedges a worker.

kombu's Redis QoS acks by first removing the message from Redis's `unacked` index and only
then releasing the prefetch slot. When Redis times out in between (a stall, a failover), the
slot is never released: with our prefetch of one the worker stays up, connected and idle,
and consumes nothing again (seen in the hung-Redis integration test). Here the slot is
released whatever Redis answered. The message itself is not lost either way: if its entry is
still in `unacked`, Redis hands it out again after the visibility timeout, and our tasks are
idempotent. And an ack on a connection Redis already dropped fails as a connection error,
which the worker survives, not as the AttributeError kombu raises there.
"""
from __future__ import annotations

from kombu.transport import redis, virtual
from redis.exceptions import ConnectionError as RedisConnectionError


class QoS(redis.QoS):
    def ack(self, delivery_tag: str) -> None:
        try:
            super().ack(delivery_tag)
        except Exception as err:
            virtual.QoS.ack(self, delivery_tag)  # release the slot, then let kombu log the failure
            raise self._as_connection_error(err) from err

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        try:
            super().reject(delivery_tag, requeue=requeue)
        except Exception as err:
            virtual.QoS.ack(self, delivery_tag)
            raise self._as_connection_error(err) from err

    def _as_connection_error(self, err: Exception) -> Exception:
        """A task that finishes after Redis dropped the worker's connection acks on a channel
        whose connection is gone: kombu fails there with an AttributeError, which the worker
        takes as unrecoverable and exits (seen when Redis restarted). It is a lost connection:
        kombu logs that and carries on, and the message comes back from `unacked`."""
        if isinstance(err, AttributeError) and getattr(self.channel.connection, "client", None) is None:
            return RedisConnectionError(f"the broker connection closed before the ack: {err}")
        return err


class Channel(redis.Channel):
    QoS = QoS


class Transport(redis.Transport):
    Channel = Channel


def transport_for(url: str) -> str | None:
    """The transport for a broker URL: ours for Redis, kombu's choice for anything else."""
    return "helpdesk.broker:Transport" if url.startswith(("redis://", "rediss://")) else None
