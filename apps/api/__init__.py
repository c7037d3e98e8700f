"""The shared DRF toolkit of every app's API (a package, not a Django app): team-scoped base
viewsets, permissions, filters, pagination, bounded parsers, fast representation, ids and the
exception handler. It sits above accounts and audit, below every app's ``api.py``."""
