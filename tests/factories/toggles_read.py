"""Toggles and gateway tokens for the read-path tests (OFREP, snapshots, change stream)."""

from __future__ import annotations

import time
from typing import Any

from apps.toggles import readcache
from apps.toggles.services import gateway_token_create, toggle_create

SPLIT_WEIGHTS = {"small": 70, "large": 30}


def sample_toggles(team: Any, *, deployment: Any = None) -> None:
    """One toggle of each type, targeting rules and a 70/30 split, for ``team``; with a
    deployment, also that deployment's own ``max_output_tokens``."""
    toggle_create(team=team, key="streaming", actor=None, value_type="boolean", value=True,
                  off_value=False, enabled=True,
                  rules=[{"conditions": [{"attribute": "tier", "op": "eq", "value": "free"}],
                          "value": False, "variant": "free-tier"}])  # fmt: skip
    toggle_create(team=team, key="max_output_tokens", actor=None, preset="max_output_tokens",
                  value=512, enabled=True,
                  rules=[{"conditions": [{"attribute": "priority", "op": "in",
                                          "value": ["batch", "low"]}], "value": 128}])  # fmt: skip
    toggle_create(team=team, key="banner", actor=None, value_type="string", value="all good",
                  off_value="", enabled=True)  # fmt: skip
    toggle_create(team=team, key="limits", actor=None, value_type="object",
                  value={"rpm": 60, "models": ["small"]}, off_value={}, enabled=True)  # fmt: skip
    toggle_create(team=team, key="model_size", actor=None, value_type="string", value="small",
                  off_value="small", enabled=True,
                  rules=[{"conditions": [], "split": [
                      {"variant": name, "value": name, "weight": weight}
                      for name, weight in SPLIT_WEIGHTS.items()]}])  # fmt: skip
    if deployment is not None:
        toggle_create(team=team, deployment=deployment, key="max_output_tokens", actor=None,
                      preset="max_output_tokens", value=64, enabled=True)  # fmt: skip


def gateway_secret(team: Any, name: str = "edge") -> str:
    _, secret = gateway_token_create(team=team, name=name, actor=None)
    return secret


def waiting_soon(count: int = 1, within_s: float = 20.0) -> bool:
    """Whether ``count`` change-stream requests are waiting in this process (the live
    server's threads, or the test's) before ``within_s`` passes."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if readcache.waiting_count() >= count:
            return True
        time.sleep(0.02)
    return False
