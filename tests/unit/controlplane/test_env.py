"""Strict readers of settings from the environment."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from controlplane.env import (
    env_bool,
    env_float,
    env_int,
    env_list,
    env_required,
    env_str,
    env_url,
)


@pytest.fixture(autouse=True)
def _clean(monkeypatch):
    for name in ("CP_TEST", "CP_TEST_FILE"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("true", True), ("YES", True), (" on ", True), ("0", False), ("Off", False)],
)
def test_env_bool__accepted_spellings__parsed(monkeypatch, raw, expected):
    monkeypatch.setenv("CP_TEST", raw)
    assert env_bool("CP_TEST", default=not expected) is expected


@pytest.mark.parametrize("raw", ["ture", "2", "y", "enabled"])
def test_env_bool__malformed__error_names_variable_and_value(monkeypatch, raw):
    monkeypatch.setenv("CP_TEST", raw)
    with pytest.raises(ImproperlyConfigured, match=rf"CP_TEST='{raw}' is not a boolean"):
        env_bool("CP_TEST", default=False)


@pytest.mark.parametrize("raw", [None, "", "   "])
def test_env_readers__unset_or_blank__default(monkeypatch, raw):
    if raw is not None:
        monkeypatch.setenv("CP_TEST", raw)
    assert env_bool("CP_TEST", default=True) is True
    assert env_str("CP_TEST", "fallback") == "fallback"
    assert env_int("CP_TEST", 7) == 7
    assert env_list("CP_TEST", ["a"]) == ["a"]


def test_env_file_variant__value_read_from_file_and_stripped(monkeypatch, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s3cr3t-value\n", encoding="utf-8")
    monkeypatch.setenv("CP_TEST_FILE", str(secret))
    assert env_str("CP_TEST") == "s3cr3t-value"
    assert env_required("CP_TEST") == "s3cr3t-value"


def test_env_file_variant__bool_from_file__parsed_strictly(monkeypatch, tmp_path):
    flag = tmp_path / "flag"
    flag.write_text("ture", encoding="utf-8")
    monkeypatch.setenv("CP_TEST_FILE", str(flag))
    with pytest.raises(ImproperlyConfigured, match="CP_TEST='ture' is not a boolean"):
        env_bool("CP_TEST", default=False)


def test_env_file_variant__both_set__error(monkeypatch, tmp_path):
    (tmp_path / "v").write_text("x", encoding="utf-8")
    monkeypatch.setenv("CP_TEST", "y")
    monkeypatch.setenv("CP_TEST_FILE", str(tmp_path / "v"))
    with pytest.raises(ImproperlyConfigured, match="Set either CP_TEST or CP_TEST_FILE, not both"):
        env_str("CP_TEST")


def test_env_file_variant__unreadable__error_names_file_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("CP_TEST_FILE", str(tmp_path / "missing"))
    with pytest.raises(ImproperlyConfigured, match=r"CP_TEST_FILE=.* cannot be read"):
        env_str("CP_TEST")


def test_env_required__unset__error_names_both_spellings():
    with pytest.raises(ImproperlyConfigured, match=r"CP_TEST \(or CP_TEST_FILE\) must be set"):
        env_required("CP_TEST")


@pytest.mark.parametrize(
    ("reader", "raw", "minimum", "message"),
    [
        (env_int, "ten", 0, "CP_TEST='ten' is not an integer"),
        (env_int, "-1", 0, "CP_TEST=-1 must be at least 0"),
        (env_float, "fast", 1.0, "CP_TEST='fast' is not a number"),
        (env_float, "0.5", 1.0, "CP_TEST=0.5 must be at least 1.0"),
    ],
)
def test_env_numbers__malformed_or_too_small__error_names_variable(
    monkeypatch, reader, raw, minimum, message
):
    monkeypatch.setenv("CP_TEST", raw)
    with pytest.raises(ImproperlyConfigured, match=message):
        reader("CP_TEST", 1, minimum=minimum)


def test_env_list__commas_and_blanks__trimmed_items(monkeypatch):
    monkeypatch.setenv("CP_TEST", " a.example.com, ,b.example.com ,")
    assert env_list("CP_TEST") == ["a.example.com", "b.example.com"]


@pytest.mark.parametrize(
    "raw",
    [
        "postgres://app:pw@db.internal:5432/cp",
        "postgresql://db/cp",
        "sqlite:////var/lib/cp.sqlite3",
    ],
)
def test_env_url__allowed_scheme__returned(monkeypatch, raw):
    monkeypatch.setenv("CP_TEST", raw)
    assert env_url("CP_TEST", schemes=("postgres", "postgresql", "sqlite")) == raw


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("mysql://app:hunter2@db/cp", "must start with one of: postgres://, sqlite://"),
        ("http://:hunter2@cache:6379/0", "must start with one of"),
        ("postgres://app:hunter2@db:port/cp", "has an invalid port"),
        ("postgres://app:hunter2@[::1/cp", "is not a valid URL"),
        ("postgres://", "names no host"),
        ("db.internal:5432", "must start with one of"),
    ],
)
def test_env_url__bad_url__error_names_variable_and_hides_password(monkeypatch, raw, fragment):
    monkeypatch.setenv("CP_TEST", raw)
    with pytest.raises(ImproperlyConfigured) as caught:
        env_url("CP_TEST", schemes=("postgres", "sqlite"))
    message = str(caught.value)
    assert message.startswith("CP_TEST")
    assert fragment in message
    assert "hunter2" not in message
    assert "hunter2" not in repr(caught.value.__cause__ or "")
