"""One JSON error shape for the whole API, and no 500 for bad input.

Every error body has ``detail`` (one sentence) and, for validation errors, ``errors``
mapping each field to its messages (``non_field_errors`` for the object as a whole).
"""

from __future__ import annotations

from typing import Any

import structlog
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError, IntegrityError, InterfaceError, OperationalError
from django.db.models import ProtectedError, RestrictedError
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from apps.core.errors import body_limit_bytes, too_large_detail

from .parsers import PayloadTooLarge

logger = structlog.get_logger("controlplane.api")


def _django_validation_to_drf(exc: DjangoValidationError) -> exceptions.ValidationError:
    if hasattr(exc, "error_dict"):
        return exceptions.ValidationError(
            {
                (field if field != "__all__" else "non_field_errors"): [
                    str(m) for e in errors for m in e.messages
                ]
                for field, errors in exc.error_dict.items()
            }
        )
    return exceptions.ValidationError({"non_field_errors": list(exc.messages)})


class DatabaseUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The database is unavailable; try again shortly."
    default_code = "database_unavailable"
    wait = 5  # DRF sends it as Retry-After


def _database_unavailable(exc: Exception) -> DatabaseUnavailable:
    """The database is down, restarting or unreachable (or a SQLite lock outlasted the busy
    timeout): the server's condition, not the request's, and passing. The connection is
    dropped at the end of the request (Django closes one that saw an error and is no
    longer usable), so the next request connects afresh. The error text, which can name
    hosts, stays in the log."""
    logger.warning("api-database-unavailable", error=str(exc), error_type=type(exc).__name__)
    return DatabaseUnavailable()


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DjangoValidationError):
        exc = _django_validation_to_drf(exc)
    elif isinstance(exc, ProtectedError | RestrictedError):
        # Subclasses of IntegrityError: checked first so the blockers are named.
        blockers = sorted(
            {str(obj) for obj in exc.protected_objects if obj is not None}
            if isinstance(exc, ProtectedError)
            else {str(obj) for obj in exc.restricted_objects}
        )
        shown = ", ".join(blockers[:10]) + (" …" if len(blockers) > 10 else "")
        exc = exceptions.APIException(
            detail=f"Cannot delete: still used by {len(blockers)} object(s): {shown}."
        )
        exc.status_code = status.HTTP_409_CONFLICT
    elif isinstance(exc, IntegrityError):
        # Reached only when a constraint is not mirrored in a serializer: still the
        # client's input, so answer 409 rather than 500.
        logger.warning("api-integrity-error", error=str(exc))
        exc = exceptions.APIException(
            detail="The request conflicts with an existing object or a constraint."
        )
        exc.status_code = status.HTTP_409_CONFLICT
    elif isinstance(exc, DataError):
        # The database's message quotes the statement and its parameters: log it, do not
        # send it.
        logger.warning("api-data-error", error=str(exc))
        exc = exceptions.ValidationError(
            {
                "non_field_errors": [
                    "A value is out of range or not valid for its field (too long, too "
                    "large or malformed)."
                ]
            }
        )
    elif isinstance(exc, OverflowError):
        # A number too large for the database to bind (SQLite stops at 2**63 - 1).
        logger.warning("api-number-overflow", error=str(exc))
        exc = exceptions.ValidationError(
            {"non_field_errors": ["A number in the request is too large."]}
        )
    elif isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge(too_large_detail(body_limit_bytes()))
    elif isinstance(exc, SuspiciousOperation):
        # Too many form fields or files, a malformed multipart body: Django's 400s, raised
        # while the view reads the body.
        logger.warning("api-suspicious-request", error=str(exc), kind=type(exc).__name__)
        exc = exceptions.ParseError("The request body could not be read: it is malformed.")
    elif isinstance(exc, OperationalError | InterfaceError):
        exc = _database_unavailable(exc)

    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        data = response.data
        if isinstance(data, list):
            data = {"non_field_errors": data}
        response.data = {"detail": "Invalid input.", "errors": data}
    elif isinstance(response.data, dict) and "detail" not in response.data:
        response.data = {"detail": str(exc), **response.data}
    return response
