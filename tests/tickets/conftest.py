"""Clients shared by the dashboard tests; each module defines its own `agent`."""
from __future__ import annotations

import pytest

from tests.factories import InboxFactory, UserFactory


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
