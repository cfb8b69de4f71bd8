"""A Redis stall during an ack must not leave a worker unable to consume (helpdesk/broker.py)."""
from __future__ import annotations

import pytest
from kombu import Connection, Queue
from kombu.transport.redis import Transport as KombuRedisTransport

from helpdesk.broker import Transport
from tests.integration.conftest import RedisServer

pytestmark = pytest.mark.integration


@pytest.fixture
def redis_server(tmp_path):  # noqa: ANN001, ANN201
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.crash()


def ack_during_a_stall(redis_server: RedisServer, transport: type) -> bool:
    """Take one message with a prefetch of one, ack it while Redis hangs; may it consume again?"""
    with Connection(redis_server.url, transport=transport, transport_options={"socket_timeout": 1}) as connection:
        channel = connection.channel()
        channel.basic_qos(prefetch_size=0, prefetch_count=1)
        queue = Queue("work", channel=channel)
        queue.declare()
        producer = connection.Producer(channel)
        producer.publish({"n": 1}, routing_key="work")
        message = queue.get(no_ack=False)
        assert message is not None and not channel.qos.can_consume()

        redis_server.pause()
        try:
            with pytest.raises(Exception, match="[Tt]imeout"):
                message.ack()
        finally:
            redis_server.resume()
        return channel.qos.can_consume()


def test_a_failed_ack_releases_the_prefetch_slot(redis_server):
    assert ack_during_a_stall(redis_server, Transport)


def test_kombus_own_transport_keeps_the_slot_which_is_why_ours_exists(redis_server):
    # If this starts failing, kombu fixed its ack and helpdesk/broker.py can go.
    assert not ack_during_a_stall(redis_server, KombuRedisTransport)


def test_a_channel_whose_connection_is_gone_fails_as_a_lost_connection_the_worker_survives(redis_server):
    # After a Redis restart, a task finishing late acks on its old channel, and closing the
    # channel restores its unacked messages. kombu raises AttributeError there, which a worker
    # treats as fatal.
    with Connection(redis_server.url, transport=Transport) as connection:
        channel = connection.channel()
        channel.basic_qos(prefetch_size=0, prefetch_count=1)
        queue = Queue("work", channel=channel)
        queue.declare()
        connection.Producer(channel).publish({"n": 1}, routing_key="work")
        message = queue.get(no_ack=False)
        assert message is not None and not channel.qos.can_consume()
        channel._pool = None  # noqa: SLF001 - as after the reset: no pool, and the connection is gone
        channel.connection = None
        with pytest.raises(tuple(Transport.connection_errors)):
            channel.qos.ack(message.delivery_tag)
        assert channel.qos.can_consume()
        with pytest.raises(tuple(Transport.connection_errors)):
            channel.qos.restore_unacked()
