"""A team's kubeconfig document: whatever it holds, checking it either accepts it or raises
the integration's one error, never anything else (that would be a 500 on save and an
unrecorded failure in the control loop)."""

from __future__ import annotations

import json

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.integrations.kubernetes import KubernetesError, kubeconfig_check, kubeconfig_load
from tests.factories.inventory import kubeconfig_document

_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(max_size=8), st.sampled_from(["prod", "c"])
)
_keys = st.one_of(
    st.sampled_from(
        [
            "clusters",
            "users",
            "contexts",
            "current-context",
            "name",
            "cluster",
            "user",
            "context",
            "server",
            "token",
            "exec",
            "tokenFile",
            "extensions",
        ]
    ),
    st.integers(),
    st.none(),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=4),
    max_leaves=20,
)


def _check(text: str, context: str = "") -> None:
    kubeconfig_check(kubeconfig_load(text), context=context)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=st.dictionaries(_keys, _values, max_size=5), context=st.sampled_from(["", "prod"]))
def test_kubeconfig_check__any_structure__accepted_or_kubernetes_error(document, context):
    text = yaml.safe_dump(document)
    errors: list[KubernetesError] = []
    try:
        _check(text, context)
    except KubernetesError as exc:
        errors.append(exc)
    assert all(e.reason == "misconfigured" and not e.retryable for e in errors)


@pytest.mark.parametrize(
    "text",
    ["a: 2001-13-45\n", "a: !!python/object:os.system x\n", "? [a, b]\n: c\n"],
)
def test_kubeconfig_load__constructor_failures__kubernetes_error(text):
    with pytest.raises(KubernetesError) as info:
        kubeconfig_load(text)

    assert "not valid YAML" in info.value.message


# The kubeconfig's server is on 127.0.0.1: opt in to loopback destinations.
@pytest.mark.usefixtures("allow_loopback_outbound")
def test_kubeconfig_check__inline_document__context_returned():
    assert kubeconfig_check(json.loads(kubeconfig_document(context="prod"))) == "prod"
