"""EncryptedJSONField: a stored value that no longer decrypts reads as UndecryptableSecret
(never an exception) and is written back as it was stored."""

from __future__ import annotations

import copy
import pickle

from django.test import override_settings

from apps.core.fields import (
    EncryptedJSONField,
    UndecryptableSecret,
    secret_problem,
    secret_stored,
)

FIELD = EncryptedJSONField()


def test_from_db_value__key_changed__undecryptable_secret_keeping_the_stored_text() -> None:
    stored = FIELD.get_prep_value({"token": "t"})

    with override_settings(FIELD_ENCRYPTION_KEY="another-key"):
        value = FIELD.from_db_value(stored, None, None)

    assert isinstance(value, UndecryptableSecret)
    assert value == {}
    assert "cannot be decrypted" in secret_problem(value)
    assert secret_stored(value)
    assert FIELD.get_prep_value(value) == stored


def test_from_db_value__not_an_object__undecryptable_not_an_error() -> None:
    assert isinstance(FIELD.from_db_value("not-encrypted", None, None), UndecryptableSecret)
    listed = FIELD.get_prep_value([1, 2])
    assert isinstance(FIELD.from_db_value(listed, None, None), UndecryptableSecret)


def test_undecryptable_secret__copied_or_pickled__stored_text_kept() -> None:
    value = UndecryptableSecret("fernet:abc")

    for clone in (copy.deepcopy(value), pickle.loads(pickle.dumps(value))):  # noqa: S301
        assert isinstance(clone, UndecryptableSecret)
        assert clone.stored == "fernet:abc"


def test_get_prep_value__mapping_put_in_place__encrypted_as_usual() -> None:
    value = UndecryptableSecret("fernet:abc")
    value["token"] = "new"

    stored = FIELD.get_prep_value(value)

    assert stored != "fernet:abc"
    assert FIELD.from_db_value(stored, None, None) == {"token": "new"}


def test_secret_helpers__readable_values__no_problem() -> None:
    assert secret_problem({"a": 1}) == ""
    assert secret_stored({"a": 1})
    assert not secret_stored({})
