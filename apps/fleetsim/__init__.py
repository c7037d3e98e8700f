"""Simulated fleets of LLM inference replicas: performance model, workloads and metrics."""
