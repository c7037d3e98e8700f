"""``python -m celery_worker.worker [celery worker options]`` starts a worker on all queues."""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
    from controlplane.celery import app

    from .config import QUEUES

    args = list(sys.argv[1:] if argv is None else argv)
    if not any(a.startswith(("-Q", "--queues")) for a in args):
        args += ["-Q", ",".join(QUEUES)]
    if not any(a.startswith(("-l", "--loglevel")) for a in args):
        args += ["--loglevel", os.environ.get("LOG_LEVEL", "INFO")]
    app.worker_main(["worker", *args])


if __name__ == "__main__":
    main()
