"""``python -m bench.autoscale``: see :mod:`bench.autoscale.cli`."""

from __future__ import annotations

import sys

from bench.autoscale.cli import main

if __name__ == "__main__":
    sys.exit(main())
