"""Settings of the control plane's own domain (metrics, control loop, demo fleet)."""

from __future__ import annotations

from controlplane.env import env_int

# How long an API token lives when its creator gives no expiry (0 = no default expiry).
API_TOKEN_DEFAULT_TTL_DAYS = env_int("API_TOKEN_DEFAULT_TTL_DAYS", 0, minimum=0)
