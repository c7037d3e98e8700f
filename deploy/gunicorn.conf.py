"""gunicorn settings of the web process (``gunicorn --config deploy/gunicorn.conf.py ...``).

Command-line flags (bind address, workers) still apply on top of this file. What it adds is
Prometheus' multiprocess mode, so that /metrics reports the whole server and not the one
worker that happens to answer the scrape:

- ``PROMETHEUS_MULTIPROC_DIR``: where the workers keep their metric values. When it is
  unset, a fresh temporary directory is used. It must be private to this server (one per
  pod/container) and writable; in Kubernetes an ``emptyDir`` volume is the usual choice.
- ``on_starting`` empties it: files of an earlier run would add to this run's counters.
- ``child_exit`` marks a dead worker's live gauges as gone; its counters stay in the sum,
  so that counters never go back when gunicorn replaces a worker.

Workers are threaded (``gthread``, ``threads`` per worker): a gateway's long-poll on the
toggles change stream (``/toggles/v1/changes``, up to 30 s) then holds one thread, not a
whole process, and keep-alive connections of gateways stay open between their requests.
At most ``TOGGLES_CHANGES_WAITERS`` (4) requests wait per process, so the other threads keep
serving; raise both together for many gateways. ``--worker-class``/``--threads`` on the
command line still override these.

``post_worker_init`` also moves what a worker loaded at start (Django, the apps and their
modules, which live as long as the worker) out of the garbage collector's reach
(``gc.freeze()``), so that the collections requests trigger walk only what requests made.
"""

from __future__ import annotations

import gc
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

# Before any worker imports prometheus_client, which picks its storage at import time.
_own_dir = None
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _own_dir = tempfile.mkdtemp(prefix="controlplane-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _own_dir


worker_class = "gthread"
threads = 8


def on_starting(server: Any) -> None:
    path = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()


def post_worker_init(worker: Any) -> None:
    gc.collect()
    gc.freeze()


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    if _own_dir is not None:
        shutil.rmtree(_own_dir, ignore_errors=True)
