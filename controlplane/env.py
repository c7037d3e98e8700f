"""Strict readers for settings that come from the environment.

A malformed value is a startup error that names the variable: a typo in
``SECURE_SSL_REDIRECT=ture`` must not silently turn a security setting off.
Each reader also accepts ``NAME_FILE`` pointing at a file holding the value, the
way container orchestrators mount secrets.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_UNSET = object()


def _raw(name: str) -> str | None:
    """Return the variable's value, reading ``NAME_FILE`` when ``NAME`` is unset."""
    value = os.environ.get(name)
    file_var = f"{name}_FILE"
    file_path = os.environ.get(file_var)
    if value is not None and file_path:
        raise ImproperlyConfigured(f"Set either {name} or {file_var}, not both.")
    if value is None and file_path:
        try:
            value = Path(file_path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ImproperlyConfigured(
                f"{file_var}={file_path!r} cannot be read: {exc.strerror}."
            ) from exc
    if value is not None and value.strip() == "":
        return None
    return value


def env_str(name: str, default: str | None = None) -> str | None:
    value = _raw(name)
    return default if value is None else value.strip()


def env_required(name: str) -> str:
    value = _raw(name)
    if value is None:
        raise ImproperlyConfigured(f"{name} (or {name}_FILE) must be set.")
    return value.strip()


def env_bool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(
        f"{name}={value!r} is not a boolean; use one of {', '.join(sorted(_TRUE | _FALSE))}."
    )


N = TypeVar("N", int, float)


def _env_number(
    name: str, default: N, minimum: N | None, parse: Callable[[str], N], noun: str
) -> N:
    value = _raw(name)
    if value is None:
        return default
    try:
        parsed = parse(value.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not {noun}.") from None
    if minimum is not None and parsed < minimum:
        raise ImproperlyConfigured(f"{name}={parsed} must be at least {minimum}.")
    return parsed


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    return _env_number(name, default, minimum, int, "an integer")


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    return _env_number(name, default, minimum, float, "a number")


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    value = _raw(name)
    if value is None:
        return list(default or [])
    return [item.strip() for item in value.split(",") if item.strip()]


def env_url(name: str, default: str | None = None, *, schemes: tuple[str, ...]) -> str | None:
    """A URL whose scheme is one of ``schemes`` and which names a host or a path."""
    value = _raw(name)
    if value is None:
        return default
    value = value.strip()
    try:
        parts = urlsplit(value)
    except ValueError:
        # The value cannot be parsed, so neither can its password be hidden: name the
        # variable only.
        raise ImproperlyConfigured(f"{name} is not a valid URL.") from None
    if parts.scheme not in schemes:
        raise ImproperlyConfigured(
            f"{name}={_redact(value)!r} must start with one of: "
            f"{', '.join(s + '://' for s in schemes)}."
        )
    if not (parts.netloc or parts.path):
        raise ImproperlyConfigured(f"{name}={_redact(value)!r} names no host.")
    try:
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise ImproperlyConfigured(f"{name}={_redact(value)!r} has an invalid port.") from None
    return value


def _redact(url: str) -> str:
    """Hide a password in a URL so that startup errors never print secrets."""
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@", 1)
    return url


def env_networks(name: str) -> list[str]:
    """Comma-separated IP networks in CIDR form (a bare address is one host); each is
    returned normalised (``127.0.0.1`` → ``127.0.0.1/32``)."""
    import ipaddress

    networks = []
    for item in env_list(name):
        try:
            networks.append(str(ipaddress.ip_network(item, strict=True)))
        except ValueError as exc:
            raise ImproperlyConfigured(
                f"{name}: {item!r} is not a network in CIDR form ({exc})."
            ) from None
    return networks


def env_hosts(name: str, default: list[str] | None = None) -> list[str]:
    """Comma-separated host names, each either exact (``chat.example.com``) or a wildcard
    for the names below a domain (``*.example.com``); lower-cased."""
    hosts = []
    for item in env_list(name, default):
        host = item.lower().rstrip(".")
        bare = host[2:] if host.startswith("*.") else host
        labels = bare.split(".")
        if not bare or not all(
            label and len(label) <= 63 and label.replace("-", "").isalnum() and label.isascii()
            for label in labels
        ):
            raise ImproperlyConfigured(
                f"{name}: {item!r} is not a host name or a '*.domain' wildcard."
            )
        hosts.append(host)
    return hosts
