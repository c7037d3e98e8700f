"""Metric catalogue per serving framework, batched PromQL collection, downsampled samples."""
