"""One running stack for the whole chaos suite, the desk's configuration, and the count lines.

`make chaos` runs this directory only, on PostgreSQL (bin/pg-test-cluster, which also says
where the cluster's data lives so a fault can restart it); tests/conftest.py leaves it out
of every other run. Faults that do not ruin the stack share it: it starts once (about 15 s).
Each fault prints one line of counts at the end of the run, pass or fail.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.channels_in.sms_helpers import DESK_NUMBER, SmsChannelFactory
from tests.chaos.stack import Stack, start_stack
from tests.chaos.traffic import SUPPORT, Agent
from tests.factories import EmailChannelFactory, UserFactory, WebChatChannelFactory

_LINES_KEY = pytest.StashKey[list[str]]()


@dataclass(frozen=True)
class Desk:
    agent: Agent
    agent_id: int
    sms_channel_uuid: str
    widget_key: str


@pytest.fixture(scope="session")
def stack(django_db_blocker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Everything runs on the database of the throwaway cluster (PG_TEST_DATA says it is one)."""
    from django.db import connection

    assert connection.vendor == "postgresql" and os.environ.get("PG_TEST_DATA"), \
        "the chaos suite runs on PostgreSQL under bin/pg-test-cluster only: make chaos"
    running = start_stack(tmp_path_factory.mktemp("chaos"), blocker=django_db_blocker)
    try:
        yield running
    finally:
        running.stop()
        failed_processes = [p for p in running.processes() if "Traceback" in p.log()]
        for process in failed_processes:  # what went wrong inside, for a red run
            sys.stderr.write(f"\n----- {process.name} (log tail) -----\n{process.log()[-4000:]}\n")


@pytest.fixture(scope="session")
def desk(stack: Stack) -> Desk:
    """An email inbox, an SMS number and a chat widget, and an agent of all three with an API token."""
    from rest_framework.authtoken.models import Token

    with stack.db():
        email = EmailChannelFactory(address=SUPPORT, from_name="Acme Support", inbox__name="Email")
        sms = SmsChannelFactory(phone_number=DESK_NUMBER, inbox__name="SMS")
        chat = WebChatChannelFactory(allowed_origins="*", pre_chat_form=False, inbox__name="Chat")
        agent = UserFactory(username="chaos-agent", first_name="Casey")
        for inbox in (email.inbox, sms.inbox, chat.inbox):
            inbox.members.add(agent)
        token = Token.objects.create(user=agent).key
        return Desk(agent=Agent(token), agent_id=agent.pk, sms_channel_uuid=str(sms.uuid), widget_key=chat.public_key)


@pytest.fixture
def report_line(request: pytest.FixtureRequest):
    """Records a fault's line of counts; all are printed at the end of the run (`-s` or not)."""
    lines = request.config.stash.setdefault(_LINES_KEY, [])

    def record(line: str) -> None:
        lines.append(line)
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None and request.config.get_verbosity() > 0:
            reporter.write_line(f"\n{line}")

    return record


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    lines = config.stash.get(_LINES_KEY, [])
    if lines:
        terminalreporter.section("chaos counts")
        for line in lines:
            terminalreporter.write_line(line)
