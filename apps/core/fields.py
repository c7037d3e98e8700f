"""Model fields shared by several apps."""

from __future__ import annotations

import base64
import hashlib
import json
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.db import models

_PREFIX = "fernet:"


@lru_cache(maxsize=4)
def _fernet(secret: str) -> Fernet:
    # Any string works as FIELD_ENCRYPTION_KEY: Fernet wants 32 url-safe base64 bytes.
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(secret.encode()).digest()))


def encrypt_text(plain: str) -> str:
    return _PREFIX + _fernet(settings.FIELD_ENCRYPTION_KEY).encrypt(plain.encode()).decode()


def decrypt_text(stored: str) -> str:
    if not stored.startswith(_PREFIX):
        raise ValueError("not an encrypted value")
    try:
        return _fernet(settings.FIELD_ENCRYPTION_KEY).decrypt(stored[len(_PREFIX) :]).decode()
    except InvalidToken:
        raise ValueError(
            "stored secret cannot be decrypted: FIELD_ENCRYPTION_KEY (or SECRET_KEY) changed"
        ) from None


UNDECRYPTABLE_PROBLEM = (
    "the stored secret cannot be decrypted (FIELD_ENCRYPTION_KEY or SECRET_KEY changed since "
    "it was saved) and must be set again"
)


class UndecryptableSecret(dict[str, Any]):
    """What an :class:`EncryptedJSONField` reads when its stored text cannot be decrypted
    (the key changed) or does not hold a JSON object.

    Reading a row must not fail because of it: lists, details and the control loop see an
    empty mapping (nothing of the secret is known) and ask :func:`secret_problem` why. The
    stored text is kept, so saving the row for another reason writes it back unchanged (a
    restored old key makes it readable again); a mapping put in its place is stored as usual.
    """

    def __init__(self, stored: str) -> None:
        super().__init__()
        self.stored = stored


def secret_problem(value: Any) -> str:
    """Why the secret read from an :class:`EncryptedJSONField` is unusable; "" when it is
    readable (empty included)."""
    return UNDECRYPTABLE_PROBLEM if isinstance(value, UndecryptableSecret) else ""


def secret_stored(value: Any) -> bool:
    """Whether a secret is stored, readable or not (an empty object counts as none)."""
    return isinstance(value, UndecryptableSecret) or bool(value)


class EncryptedJSONField(models.TextField):
    """A JSON object stored encrypted (Fernet: AES-128-CBC + HMAC-SHA256) with a key derived
    from ``FIELD_ENCRYPTION_KEY``. The database holds only ``fernet:...`` text; reads give
    the object back, or an :class:`UndecryptableSecret` when it cannot be decrypted. Not
    searchable, by design."""

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> Any:
        if value is None or value == "":
            return {}
        try:
            loaded = json.loads(decrypt_text(value))
        except (ValueError, UnicodeDecodeError):  # JSONDecodeError is a ValueError
            return UndecryptableSecret(value)
        return loaded if isinstance(loaded, dict) else UndecryptableSecret(value)

    def to_python(self, value: Any) -> Any:
        if isinstance(value, dict):
            return value
        if value in (None, ""):
            return {}
        if isinstance(value, str) and value.startswith(_PREFIX):
            return json.loads(decrypt_text(value))
        return json.loads(value) if isinstance(value, str) else value

    def get_prep_value(self, value: Any) -> Any:
        if isinstance(value, UndecryptableSecret) and not value:
            return value.stored
        if value is None:
            value = {}
        return encrypt_text(json.dumps(value, sort_keys=True))

    def value_to_string(self, obj: Any) -> str:
        return "(encrypted)"
