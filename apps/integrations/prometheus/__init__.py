from .client import PrometheusClient, PrometheusError
from .types import InstantSample

__all__ = ["InstantSample", "PrometheusClient", "PrometheusError"]
