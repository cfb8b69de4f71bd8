"""Django Channels: the Redis channel layer shared by every ASGI process."""
from __future__ import annotations

from helpdesk.env import env_str

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            # redis-py 8 reads with a 5 s socket timeout by default, the same 5 s channels-redis
            # blocks in BZPOPMIN waiting for a message: an idle socket's consumer then dies with
            # TimeoutError and the browser is disconnected every few seconds. Read longer.
            "hosts": [{"address": env_str("CHANNELS_REDIS_URL", env_str("REDIS_URL", "redis://127.0.0.1:6379/0")), "socket_timeout": 15}],
            "capacity": 1000,
            "expiry": 30,
            "prefix": "helpdesk-ws",
        },
    },
}
