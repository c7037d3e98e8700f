"""The readers of the outbound settings: networks in CIDR form and host-name patterns."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from controlplane.env import env_hosts, env_networks


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CP_TEST", "CP_TEST_FILE"):
        monkeypatch.delenv(name, raising=False)


def test_env_networks__unset__empty() -> None:
    assert env_networks("CP_TEST") == []


def test_env_networks__cidrs_and_bare_addresses__normalised(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CP_TEST", "10.20.0.0/16, 127.0.0.1 ,fd00::/8")
    assert env_networks("CP_TEST") == ["10.20.0.0/16", "127.0.0.1/32", "fd00::/8"]


@pytest.mark.parametrize("raw", ["10.0.0.1/8", "localhost", "300.0.0.0/8", "10.0.0.0/33"])
def test_env_networks__malformed__error_names_variable_and_item(
    monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    monkeypatch.setenv("CP_TEST", raw)
    with pytest.raises(ImproperlyConfigured, match=rf"CP_TEST: '{raw}' is not a network"):
        env_networks("CP_TEST")


def test_env_hosts__names_and_wildcards__lower_cased(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CP_TEST", "Chat.Example.com., *.corp.example")
    assert env_hosts("CP_TEST") == ["chat.example.com", "*.corp.example"]


@pytest.mark.parametrize("raw", ["http://x.example", "a..b", "*", "x.example/path", "user@x"])
def test_env_hosts__not_a_host__error_names_variable(
    monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    monkeypatch.setenv("CP_TEST", raw)
    with pytest.raises(ImproperlyConfigured, match=r"CP_TEST: .* is not a host name"):
        env_hosts("CP_TEST")
