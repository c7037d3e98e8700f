"""Settings of the server that ``bench/toggles.py`` starts: the product's, with the bench
URLconf (the product has no bench route)."""

from controlplane.settings import *  # noqa: F403

ROOT_URLCONF = "bench.toggles_urls"
