"""Clusters and cloud accounts, models, deployments and their readiness."""
