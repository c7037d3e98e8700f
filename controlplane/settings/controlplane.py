"""Settings of the control plane's own domain (metrics, control loop, demo fleet)."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from controlplane.env import (
    env_bool,
    env_float,
    env_hosts,
    env_int,
    env_list,
    env_networks,
    env_str,
    env_url,
)

# How long an API token lives when its creator gives no expiry (0 = no default expiry).
API_TOKEN_DEFAULT_TTL_DAYS = env_int("API_TOKEN_DEFAULT_TTL_DAYS", 0, minimum=0)

# --- metrics collection -------------------------------------------------------------------
# Prometheus to query when a deployment's cluster names none.
PROMETHEUS_URL = env_url("PROMETHEUS_URL", None, schemes=("http", "https"))
METRICS_COLLECT_INTERVAL_S = env_float("METRICS_COLLECT_INTERVAL_S", 10.0, minimum=1.0)
# Data older than this is "stale": missing, never a number.
METRICS_STALENESS_S = env_float("METRICS_STALENESS_S", 60.0, minimum=1.0)
METRICS_RATE_WINDOW = env_str("METRICS_RATE_WINDOW", "1m") or "1m"
METRICS_QUERY_TIMEOUT_S = env_float("METRICS_QUERY_TIMEOUT_S", 5.0, minimum=0.1)
# Deployments are split into this many shards, each collected by its own task.
METRICS_SHARDS = env_int("METRICS_SHARDS", 1, minimum=1)
METRICS_SAMPLE_RESOLUTION_S = env_int("METRICS_SAMPLE_RESOLUTION_S", 60, minimum=10)
METRICS_SAMPLE_RETENTION_DAYS = env_int("METRICS_SAMPLE_RETENTION_DAYS", 14, minimum=1)

# --- SLOs ---------------------------------------------------------------------------------
SLO_EVALUATION_INTERVAL_S = env_float("SLO_EVALUATION_INTERVAL_S", 30.0, minimum=1.0)
SLO_HISTORY_RESOLUTION_S = env_int("SLO_HISTORY_RESOLUTION_S", 60, minimum=10)
# Divides every SLO and burn-rate window: for demos and tests on a simulated fleet that
# cannot wait hours. Leave at 1 in production.
SLO_WINDOW_COMPRESSION = env_float("SLO_WINDOW_COMPRESSION", 1.0, minimum=1.0)

# --- autoscaling --------------------------------------------------------------------------
AUTOSCALING_INTERVAL_S = env_float("AUTOSCALING_INTERVAL_S", 10.0, minimum=1.0)
# How often warm pools and standby replicas are brought to what deployments' labels ask
# (autoscaling.llm-controlplane/warm-pool-size, docs/autoscaling.md "Warm capacity").
AUTOSCALING_WARM_SYNC_INTERVAL_S = env_float("AUTOSCALING_WARM_SYNC_INTERVAL_S", 60.0, minimum=5.0)
AUTOSCALING_APPLY_ATTEMPTS = env_int("AUTOSCALING_APPLY_ATTEMPTS", 5, minimum=1)
# Where the "simulated" actuator finds the fleet simulator.
FLEETSIM_URL = env_url("FLEETSIM_URL", "http://127.0.0.1:9400", schemes=("http", "https"))
# Directories whose per-team subdirectories (<dir>/<team slug>/) may hold kubeconfig files
# that team operators reference by path. Empty: operators must upload the kubeconfig itself.
KUBECONFIG_ALLOWED_DIRS = env_list("KUBECONFIG_ALLOWED_DIRS", [])
if any(not _dir.startswith("/") for _dir in KUBECONFIG_ALLOWED_DIRS):
    raise ImproperlyConfigured("KUBECONFIG_ALLOWED_DIRS must list absolute directories.")

# --- go-live checks and gate (docs/golive.md) -----------------------------------------------
# How often every deployment's go-live checks run.
GOLIVE_CHECK_INTERVAL_S = env_float("GOLIVE_CHECK_INTERVAL_S", 300.0, minimum=10.0)
# A load test older than this no longer passes its check.
GOLIVE_LOADTEST_MAX_AGE_S = env_float("GOLIVE_LOADTEST_MAX_AGE_S", 7 * 86400.0, minimum=60.0)
# Caps of every load test a team asks for: the highest rate and the longest run.
GOLIVE_LOADTEST_MAX_RATE_RPS = env_float("GOLIVE_LOADTEST_MAX_RATE_RPS", 200.0, minimum=0.1)
GOLIVE_LOADTEST_MAX_TOTAL_S = env_float("GOLIVE_LOADTEST_MAX_TOTAL_S", 900.0, minimum=1.0)
# The newest log line of a deployment may be this old for the logs check to pass.
GOLIVE_LOGS_MAX_AGE_S = env_float("GOLIVE_LOGS_MAX_AGE_S", 900.0, minimum=10.0)
# The gate, as inventory and autoscaling call it (dotted paths; empty: no gate).
INVENTORY_ACTIVATION_GUARD = (
    env_str("INVENTORY_ACTIVATION_GUARD", "apps.golive.gate.activation_refusal") or ""
)
AUTOSCALING_ENFORCE_GUARD = (
    env_str("AUTOSCALING_ENFORCE_GUARD", "apps.golive.gate.enforce_refusal") or ""
)

# --- automatic degradation ---------------------------------------------------------------
DEGRADATION_INTERVAL_S = env_float("DEGRADATION_INTERVAL_S", 15.0, minimum=1.0)
# Data a trigger reads is unknown (it never moves a level) once it is older than this many
# intervals of the loop that writes it (SLO evaluation, autoscaling, metrics collection).
DEGRADATION_STALE_INTERVALS = env_float("DEGRADATION_STALE_INTERVALS", 3.0, minimum=1.0)

# --- alerts -------------------------------------------------------------------------------
# The console's public address, for links in chat messages (e.g. https://llmcp.example.com).
PUBLIC_URL = env_url("PUBLIC_URL", None, schemes=("http", "https")) or ""
ALERTS_FLUSH_INTERVAL_S = env_float("ALERTS_FLUSH_INTERVAL_S", 5.0, minimum=1.0)
ALERTS_RULES_INTERVAL_S = env_float("ALERTS_RULES_INTERVAL_S", 30.0, minimum=5.0)
# A delivery that keeps failing with retryable errors is given up after this many attempts.
ALERTS_DELIVERY_ATTEMPTS = env_int("ALERTS_DELIVERY_ATTEMPTS", 8, minimum=1)
ALERTS_RETENTION_DAYS = env_int("ALERTS_RETENTION_DAYS", 30, minimum=1)

# --- logs ---------------------------------------------------------------------------------
# Where log lines are stored: "sql" (the default database: SQLite for `make run`, PostgreSQL
# in production) or "clickhouse" (LOGS_CLICKHOUSE_URL, native protocol,
# clickhouse://user:password@host:9000/database).
LOGS_BACKEND = env_str("LOGS_BACKEND", "sql") or "sql"
if LOGS_BACKEND not in ("sql", "clickhouse"):
    raise ImproperlyConfigured("LOGS_BACKEND must be 'sql' or 'clickhouse'.")
LOGS_CLICKHOUSE_URL = env_url("LOGS_CLICKHOUSE_URL", None, schemes=("clickhouse",)) or ""
if LOGS_BACKEND == "clickhouse" and not LOGS_CLICKHOUSE_URL:
    raise ImproperlyConfigured("LOGS_BACKEND=clickhouse needs LOGS_CLICKHOUSE_URL.")
LOGS_RETENTION_DAYS = env_int("LOGS_RETENTION_DAYS", 7, minimum=1)
# How often partitions are created ahead and retention applied, how many days ahead, and
# the most rows one retention DELETE statement removes.
LOGS_MAINTENANCE_INTERVAL_S = env_float("LOGS_MAINTENANCE_INTERVAL_S", 3600.0, minimum=60.0)
LOGS_PARTITION_DAYS_AHEAD = env_int("LOGS_PARTITION_DAYS_AHEAD", 2, minimum=1)
LOGS_RETENTION_BATCH = env_int("LOGS_RETENTION_BATCH", 10_000, minimum=100)
# Ingestion (POST /loki/api/v1/push, /v1/logs, /otlp/v1/logs). Per-team rates are token
# buckets holding LOGS_INGEST_BURST_S seconds of the rate (0 switches a rate off); a team's
# TeamLogSettings may override them. Bodies over LOGS_MAX_BODY_BYTES (compressed or not)
# are refused with 413.
LOGS_INGEST_LINES_PER_S = env_int("LOGS_INGEST_LINES_PER_S", 100_000, minimum=0)
LOGS_INGEST_BYTES_PER_S = env_int("LOGS_INGEST_BYTES_PER_S", 32 * 1024 * 1024, minimum=0)
LOGS_INGEST_BURST_S = env_float("LOGS_INGEST_BURST_S", 5.0, minimum=0.1)
LOGS_MAX_BODY_BYTES = env_int("LOGS_MAX_BODY_BYTES", 32 * 1024 * 1024, minimum=1024)
# Loki's per-entry and per-stream limits (apps.logs.wire.Limits); 0 switches a check off.
LOGS_MAX_LINE_SIZE = env_int("LOGS_MAX_LINE_SIZE", 256 * 1024, minimum=0)
LOGS_MAX_LINE_SIZE_TRUNCATE = env_bool("LOGS_MAX_LINE_SIZE_TRUNCATE", False)
LOGS_MAX_LABEL_NAMES_PER_SERIES = env_int("LOGS_MAX_LABEL_NAMES_PER_SERIES", 15, minimum=0)
LOGS_MAX_LABEL_NAME_LENGTH = env_int("LOGS_MAX_LABEL_NAME_LENGTH", 1024, minimum=0)
LOGS_MAX_LABEL_VALUE_LENGTH = env_int("LOGS_MAX_LABEL_VALUE_LENGTH", 2048, minimum=0)
LOGS_MAX_STRUCTURED_METADATA_BYTES = env_int(
    "LOGS_MAX_STRUCTURED_METADATA_BYTES", 64 * 1024, minimum=0
)
LOGS_MAX_STRUCTURED_METADATA_ENTRIES = env_int(
    "LOGS_MAX_STRUCTURED_METADATA_ENTRIES", 128, minimum=0
)
# Entries older than this (or newer than now + the grace period) are refused; 0: no check.
LOGS_REJECT_OLD_SAMPLES_MAX_AGE_S = env_int(
    "LOGS_REJECT_OLD_SAMPLES_MAX_AGE_S", 7 * 86_400, minimum=0
)
LOGS_CREATION_GRACE_PERIOD_S = env_int("LOGS_CREATION_GRACE_PERIOD_S", 600, minimum=0)
# Reading: the most lines one query or search page returns; live tail's poll interval,
# heartbeat interval and the longest a tail stream stays open (the client reconnects).
LOGS_QUERY_MAX_LIMIT = env_int("LOGS_QUERY_MAX_LIMIT", 5000, minimum=1)
LOGS_TAIL_POLL_S = env_float("LOGS_TAIL_POLL_S", 1.0, minimum=0.05)
LOGS_TAIL_HEARTBEAT_S = env_float("LOGS_TAIL_HEARTBEAT_S", 15.0, minimum=1.0)
LOGS_TAIL_MAX_S = env_float("LOGS_TAIL_MAX_S", 600.0, minimum=1.0)

# --- outbound calls -----------------------------------------------------------------------
# URLs that teams give (chat webhooks, a cluster's Prometheus) may not reach loopback,
# link-local, private, shared, multicast or reserved addresses (apps/core/netguard.py)
# except in these networks (CIDRs). Empty in every environment: allow a network only for a
# receiver of your own that lives there.
OUTBOUND_ALLOWED_NETWORKS = env_networks("OUTBOUND_ALLOWED_NETWORKS")
# Host names accepted for each chat kind, besides the platform's own (see
# apps/integrations/chat): for self-hosted or regional domains. "*.example.com" allows the
# names below example.com.
CHAT_SLACK_HOSTS = env_hosts("CHAT_SLACK_HOSTS")
CHAT_FEISHU_HOSTS = env_hosts("CHAT_FEISHU_HOSTS")
CHAT_DINGTALK_HOSTS = env_hosts("CHAT_DINGTALK_HOSTS")
CHAT_WECOM_HOSTS = env_hosts("CHAT_WECOM_HOSTS")
CHAT_TEAMS_HOSTS = env_hosts("CHAT_TEAMS_HOSTS")

# --- authentication failures --------------------------------------------------------------
# Failed API-token attempts allowed per client address (and per token prefix) in a window;
# past it the API answers 429 with Retry-After until the window ends. 0 switches it off.
API_TOKEN_FAILURE_LIMIT = env_int("API_TOKEN_FAILURE_LIMIT", 20, minimum=0)
API_TOKEN_FAILURE_WINDOW_S = env_int("API_TOKEN_FAILURE_WINDOW_S", 300, minimum=1)
# Failed password logins (admin console) allowed per client address and per username.
LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 10, minimum=0)
LOGIN_FAILURE_WINDOW_S = env_int("LOGIN_FAILURE_WINDOW_S", 900, minimum=1)

# Gateways reading toggles (apps/toggles/gateway.py). The team's toggle version lives in the
# cache (Redis) for this long before it is read again from the database (a safety net for a
# change announced while Redis was unreachable); a change-stream request waits at most
# TOGGLES_CHANGES_MAX_WAIT_S, and at most TOGGLES_CHANGES_WAITERS of them wait at once per
# server process (keep it below gunicorn's --threads: the other threads serve the rest).
TOGGLES_VERSION_TTL_S = env_int("TOGGLES_VERSION_TTL_S", 300, minimum=1)
TOGGLES_CHANGES_MAX_WAIT_S = env_int("TOGGLES_CHANGES_MAX_WAIT_S", 30, minimum=1)
TOGGLES_CHANGES_WAITERS = env_int("TOGGLES_CHANGES_WAITERS", 4, minimum=0)
