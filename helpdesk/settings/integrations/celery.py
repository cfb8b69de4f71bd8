"""Celery on Redis: at-least-once delivery, idempotent tasks (DESIGN.md, reliability model)."""
from __future__ import annotations

from helpdesk.broker import transport_for
from helpdesk.env import env_bool, env_int, env_str

REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
# kombu's Redis transport with acks that cannot wedge a worker (helpdesk/broker.py).
CELERY_BROKER_TRANSPORT = transport_for(CELERY_BROKER_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
# A killed pool child would otherwise ack its message and lose it.
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # Messages of a dead worker main process come back after this; the database sweeper
    # re-enqueues long before, so this only bounds the duplicate (which is a no-op).
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 900),
    # Above the workers' 1 s BRPOP, and what one publish may wait on a hung Redis.
    "socket_timeout": 3,
    "socket_connect_timeout": 2,
}
# Publishing must fail fast when Redis is down: the row is already durable and the sweeper
# enqueues it later, while a hanging publish would hold a webhook past its provider timeout.
# No kombu-level retry: against a hung Redis each retry waited the socket timeout again
# (15 s measured with one retry and a 5 s timeout); a connection dropped by a Redis restart
# is already re-established by redis-py itself.
CELERY_TASK_PUBLISH_RETRY = True
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 0, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}
CELERY_BROKER_CONNECTION_TIMEOUT = 2
# Celery's Django fixup closes every database connection around each task (and, in a
# prefork worker with a connection pool, throws the pool away): a new PostgreSQL connection
# per task. helpdesk/celery.py does around a task what Django does around a request instead
# (close_old_connections), so pooled and DB_CONN_MAX_AGE connections are reused; the fixup
# then only acts after this many task starts and ends.
CELERY_DB_REUSE_MAX = 1_000_000
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "channels_in.inbound_process": {"queue": "inbound"},
    "channels_in.outbound_deliver": {"queue": "outbound"},
    "channels_in.sweep": {"queue": "default"},
    "tickets.sla_*": {"queue": "sla"},
}
CELERY_BEAT_SCHEDULE = {
    "sweep-stuck-work": {
        "task": "channels_in.sweep",
        "schedule": float(env_int("SWEEP_INTERVAL_SECONDS", 15)),
        "options": {"expires": 60},
    },
    # Warnings and breaches reach the dashboard within this interval of their due time.
    # Waiting conversations of routed inboxes find an agent as capacity frees up.
    "routing-assign": {
        "task": "tickets.routing_assign",
        "schedule": float(env_int("ROUTING_INTERVAL_SECONDS", 15)),
        "options": {"expires": 60},
    },
    "sla-sweep": {
        "task": "tickets.sla_sweep",
        "schedule": float(env_int("SLA_SWEEP_INTERVAL_SECONDS", 15)),
        "options": {"expires": 60},
    },
    # Timed snoozes end within this interval of their time (a customer message wakes one at once).
    "snooze-wake": {
        "task": "tickets.snooze_wake",
        "schedule": float(env_int("SNOOZE_INTERVAL_SECONDS", 15)),
        "options": {"expires": 60},
    },
}
