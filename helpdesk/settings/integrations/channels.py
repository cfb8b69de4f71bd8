"""Django Channels: the Redis channel layer shared by every ASGI process."""
from __future__ import annotations

from helpdesk.env import env_str

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            "hosts": [env_str("CHANNELS_REDIS_URL", env_str("REDIS_URL", "redis://127.0.0.1:6379/0"))],
            "capacity": 1000,
            "expiry": 30,
            "prefix": "helpdesk-ws",
        },
    },
}
