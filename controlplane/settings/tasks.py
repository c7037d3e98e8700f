"""Celery: Redis when REDIS_URL is set, otherwise kombu's filesystem transport under var/."""

from __future__ import annotations

import math

from controlplane.env import env_float, env_int, env_url

from .base import VAR_DIR

REDIS_URL = env_url("REDIS_URL", None, schemes=("redis", "rediss", "unix"))

if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {"visibility_timeout": 3600}
else:
    _broker_dir = VAR_DIR / "broker"
    # The transport lists these folders on every poll and fails if they are missing.
    for _sub in ("queue", "control", "processed"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "control_folder": str(_broker_dir / "control"),
        "processed_folder": str(_broker_dir / "processed"),
        "store_processed": False,
    }

# Results are not used: tasks record their outcome in the database.
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 60, minimum=1)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 90, minimum=1)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# --- drain before scale-down (apps/balancing/drain.py) ---------------------------------
# A scale-down of a deployment behind gateways first takes the members it removes out of
# every gateway's upstreams, then waits for the requests they serve to end, at most this
# long in all (then it removes them anyway, and records what was left).
BALANCING_DRAIN_TIMEOUT_S = env_float("BALANCING_DRAIN_TIMEOUT_S", 120.0, minimum=0.0)
# A gateway whose agent has not fetched its configuration for this long is not waited for
# (it is listed as skipped in the scale action's drain record).
BALANCING_GATEWAY_STALE_S = env_float("BALANCING_GATEWAY_STALE_S", 60.0, minimum=1.0)
# How often a drain re-reads the gateways' reports and the members' requests in flight.
BALANCING_DRAIN_POLL_S = env_float("BALANCING_DRAIN_POLL_S", 1.0, minimum=0.01)

# What applying an action may take besides a drain: actuator calls with their retries.
AUTOSCALING_APPLY_TIME_LIMIT_S = env_int("AUTOSCALING_APPLY_TIME_LIMIT_S", 90, minimum=10)
# execute_action's hard time limit: a full drain and then the apply.
AUTOSCALING_ACTION_TIME_LIMIT_S = (
    math.ceil(BALANCING_DRAIN_TIMEOUT_S) + AUTOSCALING_APPLY_TIME_LIMIT_S
)
# The lease of a scale action being applied: the TTL of its deployment's lock. It
# outlasts the longest apply (execute_action's hard time limit); a running action whose
# lease has run out lost its worker and is queued again (autoscaling.evaluate_all). A
# drain never holds the lock past it: when the lease is shorter, drains are cut short.
AUTOSCALING_ACTION_LEASE_S = env_int(
    "AUTOSCALING_ACTION_LEASE_S", AUTOSCALING_ACTION_TIME_LIMIT_S + 30, minimum=1
)

# A worker is considered alive while its heartbeat is younger than this.
WORKER_HEARTBEAT_INTERVAL_S = env_int("WORKER_HEARTBEAT_INTERVAL_S", 15, minimum=1)
WORKER_HEARTBEAT_MAX_AGE_S = env_int("WORKER_HEARTBEAT_MAX_AGE_S", 60, minimum=1)

# The cache holds short-lived locks and hot values. Redis when configured; otherwise files
# under var/, which (unlike the in-process cache) the web, worker and beat processes share.
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "apps.core.cache.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }
