"""deploy/gunicorn.conf.py's worker hooks."""

from __future__ import annotations

import gc
import runpy
from pathlib import Path

CONFIG = Path(__file__).resolve().parents[3] / "deploy" / "gunicorn.conf.py"


def test_post_worker_init__worker_loaded__start_up_objects_frozen_out_of_the_collector(
    monkeypatch, tmp_path
):
    # Given a directory, the config file makes none of its own.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    hooks = runpy.run_path(str(CONFIG))
    gc.unfreeze()
    try:
        assert gc.get_freeze_count() == 0
        hooks["post_worker_init"](None)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
