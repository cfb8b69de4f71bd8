"""The small interface every channel adapter implements, and its one error type."""
from __future__ import annotations

import dataclasses
from typing import Protocol

from conversations.models import Message


class AdapterError(Exception):
    """A provider refused or failed. Permanent: give up and show `failed`; else retry."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclasses.dataclass(frozen=True)
class SendReceipt:
    provider_message_id: str
    from_address: str = ""
    to_address: str = ""


class ChannelAdapter(Protocol):
    kind: str

    def send(self, message: Message) -> SendReceipt: ...
