"""Settings of the server that ``bench/api.py`` starts: the product's, with the bench URLconf.

The product has no bench route; only a server started with these settings serves the
minimal view the API is compared with.
"""

from controlplane.settings import *  # noqa: F403

ROOT_URLCONF = "bench.api_urls"
