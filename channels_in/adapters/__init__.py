"""Registry of channel adapters, keyed by channel kind; imported lazily."""
from __future__ import annotations

from functools import cache
from importlib import import_module

from channels_in.adapters.base import AdapterError, ChannelAdapter, SendReceipt

ADAPTERS: dict[str, str] = {
    "email": "channels_in.adapters.email.EmailAdapter",
    "sms": "channels_in.adapters.sms.SmsAdapter",
    "webchat": "channels_in.adapters.webchat.WebchatAdapter",
}


@cache
def get_adapter(kind: str) -> ChannelAdapter:
    try:
        dotted = ADAPTERS[kind]
    except KeyError:
        raise AdapterError(f"No adapter for channel {kind!r}.", permanent=True) from None
    module, _, name = dotted.rpartition(".")
    return getattr(import_module(module), name)()


__all__ = ["ADAPTERS", "AdapterError", "ChannelAdapter", "SendReceipt", "get_adapter"]
