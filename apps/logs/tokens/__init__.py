"""The ingest tokens' REST endpoints (the model, services and selectors are the app's)."""
