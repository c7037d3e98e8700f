"""Shared plumbing: request context, the API base classes, health and metrics endpoints."""
