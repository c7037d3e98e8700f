"""Kubeconfig documents a team hands over: parsed safely and checked for what would act as
the control plane rather than as the team.

A kubeconfig can do more than name a server and a credential. An ``exec`` user (or an
``auth-provider`` with ``cmd-path``) runs a command on the machine that loads it; ``gcp``
auth-providers fall back to the machine's own Google credentials; ``tokenFile``,
``client-certificate``, ``client-key`` and ``certificate-authority`` read files from its
disk. In a team's document each of those would act with the control plane's identity, so
:func:`kubeconfig_check` accepts only inline data: every key of a cluster, user and context
entry must be one of the plain ones listed below, by name.

The document is YAML (JSON is YAML). Anchors and aliases are refused: kubectl never writes
them, and expanding a nest of aliases is how a few kilobytes become gigabytes.

The server URL of the context in use is a URL the control plane calls on the team's behalf,
so it goes through the outbound policy of :mod:`apps.core.netguard` like chat webhooks and
team Prometheus URLs: loopback, link-local (cloud metadata), private and other internal
addresses are refused unless the operator allows the network in
``OUTBOUND_ALLOWED_NETWORKS`` (API servers usually sit on private addresses, so operators
typically allow their cluster networks). ``proxy-url`` is refused: a proxy would resolve
and reach the server itself, beyond that check.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from apps.core.netguard import DestinationRefused, destination_check

from .errors import KubernetesError

__all__ = [
    "KUBECONFIG_MAX_BYTES",
    "kubeconfig_check",
    "kubeconfig_load",
    "kubeconfig_server_check",
]

KUBECONFIG_MAX_BYTES = 256 * 1024

# Keys of the kubeconfig v1 schema (k8s.io/client-go/tools/clientcmd/api/v1) that hold
# inline values only.
_TOP_KEYS = {
    "apiVersion",
    "kind",
    "preferences",
    "clusters",
    "users",
    "contexts",
    "current-context",
    "extensions",
}
_CLUSTER_KEYS = {
    "server",
    "certificate-authority-data",
    "insecure-skip-tls-verify",
    "tls-server-name",
    "disable-compression",
    "extensions",
}
_USER_KEYS = {
    "token",
    "client-certificate-data",
    "client-key-data",
    "username",
    "password",
    "as",
    "as-uid",
    "as-groups",
    "as-user-extra",
    "extensions",
}
_CONTEXT_KEYS = {"cluster", "user", "namespace", "extensions"}

# Why a known key is refused, for a message that helps.
_REFUSED = {
    "exec": "an exec plugin would run a command on the control plane's host",
    "auth-provider": "an auth-provider plugin would run a command or use the control "
    "plane's own cloud credentials",
    "tokenFile": "tokenFile reads a file on the control plane's host; give the token inline "
    "as token",
    "client-certificate": "client-certificate reads a file on the control plane's host; "
    "give client-certificate-data",
    "client-key": "client-key reads a file on the control plane's host; give client-key-data",
    "certificate-authority": "certificate-authority reads a file on the control plane's "
    "host; give certificate-authority-data",
    "proxy-url": "a proxy would reach the server on the control plane's behalf, beyond its "
    "outbound address check; give the API server's own address",
}


class _NoAliasLoader(yaml.SafeLoader):
    """PyYAML's safe loader, minus anchors and aliases."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "anchors and aliases are not accepted", event.start_mark
            )
        return super().compose_node(parent, index)


def _misconfigured(message: str) -> KubernetesError:
    return KubernetesError(f"kubeconfig: {message}", retryable=False, reason="misconfigured")


def kubeconfig_load(text: str) -> dict[str, Any]:
    """Parse a kubeconfig document; any failure is a non-retryable ``misconfigured`` error."""
    if not isinstance(text, str) or not text.strip():
        raise _misconfigured("the document is empty")
    if len(text.encode("utf-8", "replace")) > KUBECONFIG_MAX_BYTES:
        raise _misconfigured(f"the document is larger than {KUBECONFIG_MAX_BYTES // 1024} KiB")
    try:
        config = yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:
        # Constructors raise plain ValueErrors too, e.g. for a date like 2001-13-45.
        raise _misconfigured(f"not valid YAML: {str(exc)[:300]}") from None
    except RecursionError:
        raise _misconfigured("the document is nested too deeply") from None
    if not isinstance(config, dict):
        raise _misconfigured("the document is not a mapping of kubeconfig fields")
    return config


def _names(keys: set[Any]) -> str:
    # YAML keys need not be strings (1: x, null: y); they must still print.
    return ", ".join(sorted(str(key) for key in keys))


def _named_entries(config: Mapping[str, Any], section: str, body: str) -> dict[str, Any]:
    entries = config.get(section)
    if entries is None:
        return {}
    if not isinstance(entries, list):
        raise _misconfigured(f"{section} must be a list")
    named: dict[str, Any] = {}
    for position, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise _misconfigured(f"{section}[{position}] needs a name")
        if not isinstance(entry.get(body), dict):
            raise _misconfigured(f"{section} entry {entry['name']!r} needs a {body} mapping")
        extra = set(entry) - {"name", body}
        if extra:
            raise _misconfigured(
                f"{section} entry {entry['name']!r} has unknown keys: {_names(extra)}"
            )
        named[entry["name"]] = entry[body]
    return named


def _check_keys(kind: str, name: str, body: Mapping[str, Any], allowed: set[str]) -> None:
    for key in body:
        if not isinstance(key, str):
            raise _misconfigured(f"{kind} {name!r}: key {key!r} is not a string")
        if key in _REFUSED:
            raise _misconfigured(f"{kind} {name!r}: {key} is not accepted ({_REFUSED[key]})")
        if key not in allowed:
            raise _misconfigured(
                f"{kind} {name!r}: {key!r} is not accepted; inline fields only "
                f"({', '.join(sorted(allowed))})"
            )


def kubeconfig_server_check(server: str, *, cluster_name: str) -> None:
    """The outbound policy for a kubeconfig cluster's ``server`` URL (its form, and every
    address its host resolves to now); a non-retryable ``misconfigured`` error naming the
    refused address otherwise. A name that does not resolve now passes: the connection
    checks again (see :func:`~apps.integrations.kubernetes.client.build_api_client`)."""
    try:
        destination_check(server, field=f"cluster {cluster_name!r} server")
    except DestinationRefused as exc:
        raise _misconfigured(str(exc)) from None


def kubeconfig_check(config: Mapping[str, Any], *, context: str = "") -> str:
    """Check a parsed kubeconfig for team use; returns the context that will be used.

    ``context`` empty means the document's ``current-context``. That context must exist and
    name a cluster (with a server) and, when it names one, a user that exist in the
    document. Every entry, used or not, may hold inline data only (the context can be
    changed later without sending the document again). The server of the context's cluster
    must pass :func:`kubeconfig_server_check` (this resolves its host name); a change of
    context is checked again by the caller.
    """
    unknown = set(config) - _TOP_KEYS
    if unknown:
        raise _misconfigured(f"unknown top-level keys: {_names(unknown)}")
    clusters = _named_entries(config, "clusters", "cluster")
    users = _named_entries(config, "users", "user")
    contexts = _named_entries(config, "contexts", "context")
    for name, body in clusters.items():
        _check_keys("cluster", name, body, _CLUSTER_KEYS)
    for name, body in users.items():
        _check_keys("user", name, body, _USER_KEYS)
    for name, body in contexts.items():
        _check_keys("context", name, body, _CONTEXT_KEYS)
    chosen = context or config.get("current-context") or ""
    if not isinstance(chosen, str) or not chosen:
        raise _misconfigured("no context given and the document has no current-context")
    if chosen not in contexts:
        raise _misconfigured(
            f"the document has no context {chosen!r} (it has: "
            f"{', '.join(sorted(contexts)) or 'none'})"
        )
    entry = contexts[chosen]
    cluster_name = entry.get("cluster")
    if not isinstance(cluster_name, str) or cluster_name not in clusters:
        raise _misconfigured(f"context {chosen!r} names cluster {cluster_name!r}, not in clusters")
    server = clusters[cluster_name].get("server")
    if not isinstance(server, str) or not server.startswith(("https://", "http://")):
        raise _misconfigured(f"cluster {cluster_name!r} needs a server URL (https://...)")
    user_name = entry.get("user")
    if user_name is not None and (not isinstance(user_name, str) or user_name not in users):
        raise _misconfigured(f"context {chosen!r} names user {user_name!r}, not in users")
    # Last: the one check that looks anything up.
    kubeconfig_server_check(server, cluster_name=cluster_name)
    return chosen
