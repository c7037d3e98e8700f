"""A database that is down or restarting answers 503 JSON, not 500 (the end-to-end case,
a real PostgreSQL stopped under gunicorn, is tests/integration/test_fault_postgres_restart.py)."""

from __future__ import annotations

import pytest
from django.db import InterfaceError, OperationalError

from apps.api.exceptions import exception_handler


@pytest.mark.parametrize(
    "error",
    [
        OperationalError('connection to server at "10.0.0.5", port 5432 failed: refused'),
        InterfaceError("connection already closed"),
    ],
)
def test_exception_handler__database_unavailable__503_json_with_retry_after(error):
    response = exception_handler(error, {})
    assert response is not None
    assert response.status_code == 503
    assert response.data == {"detail": "The database is unavailable; try again shortly."}
    assert response["Retry-After"] == "5"
    # The driver's text (hosts, ports, statements) stays in the log.
    assert "10.0.0.5" not in str(response.data)
