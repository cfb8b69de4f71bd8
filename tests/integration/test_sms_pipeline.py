"""Nothing lost, nothing doubled: the SMS pipeline with a real Redis and a real Celery worker.

A webhook signed by the twilio package's own validator is stored and published after
commit; a worker fetches the MMS media from a local fake of Twilio's API and writes one
timeline message, even when its pool child is SIGKILLed in the middle. An agent's reply is
sent by the worker through the real twilio client to the same fake, exactly once, and
Twilio's status callback moves it to delivered.
"""
from __future__ import annotations

import os
import signal
import struct
import time
import zlib
from pathlib import Path

import pytest

from channels_in.models import InboundEvent
from conversations.models import Attachment, Conversation, Message
from conversations.services import reply_create
from helpdesk.settings import test as worker_settings
from tests.channels_in.sms_helpers import (
    DESK_NUMBER,
    SmsChannelFactory,
    inbound_params,
    inbound_url,
    post_signed,
    status_params,
    status_url,
)
from tests.factories import UserFactory
from tests.fakes.twilio import FakeTwilio
from tests.integration.conftest import STUCK_AFTER, SWEEP_EVERY, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)) + chunk(
        b"IDAT", zlib.compress(b"\x00\xff\x00\x00")) + chunk(b"IEND", b"")


@pytest.fixture
def fake_twilio(settings):
    fake = FakeTwilio().start()
    settings.TWILIO_API_BASE_URL = fake.url
    yield fake
    fake.stop()


def processed(event_id: int) -> bool:
    return InboundEvent.objects.get(pk=event_id).status == InboundEvent.Status.PROCESSED


def test_pool_child_killed_while_fetching_mms_media_gives_one_message(cluster, client, fake_twilio):
    channel = SmsChannelFactory(phone_number=DESK_NUMBER)
    worker = cluster.start_worker("w1", TWILIO_API_BASE_URL=fake_twilio.url)
    png = _png()
    # Twilio's media store stalls on the first request: the worker is inside the task then.
    media_url = fake_twilio.add_media(png, "image/png", delay=30)
    params = inbound_params(body="The box arrived crushed", media=[(media_url, "image/png")])

    response = post_signed(client, inbound_url(channel), params)
    again = post_signed(client, inbound_url(channel), params)  # Twilio's own retry
    assert (response.status_code, again.status_code) == (200, 200)
    event_id = InboundEvent.objects.get().pk

    assert fake_twilio.wait_for_media_requests(1, timeout=20), worker.log()[-3000:]
    [child] = worker.children()
    os.kill(child, signal.SIGKILL)
    worker.wait_for_log("WorkerLostError")
    # reject_on_worker_lost: the message goes back to Redis and a new pool child runs it.
    wait_until(lambda: processed(event_id), timeout=STUCK_AFTER + SWEEP_EVERY + 20, what="the event to be processed")
    cluster.start_beat()  # its sweeps must not add anything
    time.sleep(STUCK_AFTER + SWEEP_EVERY)
    wait_until(lambda: cluster.redis.queued("inbound") == 0 and cluster.redis.unacked() == 0, timeout=10, what="Redis to settle")

    message = Message.objects.get()  # exactly one, whatever ran twice
    assert (message.channel, message.external_id, message.text) == ("sms", params["MessageSid"], "The box arrived crushed")
    attachment = Attachment.objects.get(message=message)
    # The worker stored it under its own MEDIA_ROOT (the test settings' one).
    stored = Path(worker_settings.MEDIA_ROOT) / attachment.file.name
    assert (attachment.content_type, stored.read_bytes()) == ("image/png", png)
    stored.unlink()
    event = InboundEvent.objects.get()
    assert (event.message_id, event.attempts) == (message.pk, 2)
    assert Conversation.objects.get().message_count == 1
    assert len([r for r in fake_twilio.media_requests() if r.path.startswith("/2010-04-01/")]) == 2


def test_sms_reply_is_sent_once_by_a_real_worker_and_delivered(cluster, client, fake_twilio):
    channel = SmsChannelFactory(phone_number=DESK_NUMBER)
    worker = cluster.start_worker("w1", TWILIO_API_BASE_URL=fake_twilio.url)
    cluster.start_beat()
    assert post_signed(client, inbound_url(channel), inbound_params(body="Where is my parcel?")).status_code == 200
    wait_until(lambda: Message.objects.filter(kind="inbound").exists(), timeout=15, what="the inbound SMS")
    conversation = Conversation.objects.get()

    message = reply_create(conversation=conversation, author=UserFactory(), text="It ships today.")
    wait_until(lambda: Message.objects.get(pk=message.pk).delivery_status == Message.DeliveryStatus.SENT, timeout=15,
               what="the reply to be sent")
    # Past the first-enqueue grace, with sweeps running: nothing is sent again.
    time.sleep(max(0.0, STUCK_AFTER + 2 * SWEEP_EVERY + 1 - (time.time() - message.created_at.timestamp())))

    [request] = fake_twilio.sends()
    message.refresh_from_db()
    assert message.external_id == request.sid
    assert request.form["StatusCallback"].endswith(f"/twilio/status/{channel.uuid}/?m={message.pk}")
    delivered = post_signed(client, status_url(channel, message.pk), status_params(request.sid, "delivered"))
    assert delivered.status_code == 200
    message.refresh_from_db()
    assert message.delivery_status == Message.DeliveryStatus.DELIVERED, worker.log()[-3000:]
