"""``python -m celery_worker.beat`` starts the periodic scheduler (run exactly one)."""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
    from controlplane.celery import app

    args = list(sys.argv[1:] if argv is None else argv)
    if not any(a.startswith(("-l", "--loglevel")) for a in args):
        args += ["--loglevel", os.environ.get("LOG_LEVEL", "INFO")]
    app.start(["beat", *args])


if __name__ == "__main__":
    main()
