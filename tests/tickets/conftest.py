"""Fixtures shared by the dashboard tests; each module defines its own `agent` (a module may
override any of these with its own)."""
from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from tests.factories import EmailChannelFactory, InboxFactory, UserFactory


@pytest.fixture
def agent_client(client, agent):
    client.force_login(agent)
    return client


@pytest.fixture
def stranger_client(client):
    """An agent of another inbox."""
    stranger = UserFactory(username="mallory")
    InboxFactory(name="Elsewhere").members.add(stranger)
    client.force_login(stranger)
    return client


@pytest.fixture
def inbox(agent):
    """An email inbox with its address (a reply needs a channel that reaches the customer)."""
    inbox = EmailChannelFactory(inbox__name="Support").inbox
    inbox.members.add(agent)
    return inbox


@pytest.fixture
def bob(inbox):
    bob = UserFactory(username="bob", first_name="Bob", last_name="Brennan")
    inbox.members.add(bob)
    return bob


@pytest.fixture
def layer():
    """The in-memory channel layer, emptied before and after: no group outlives the test."""
    layer = get_channel_layer()
    async_to_sync(layer.flush)()
    yield layer
    async_to_sync(layer.flush)()
