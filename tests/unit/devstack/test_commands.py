"""The development commands keep their names, now that they live in apps.devstack."""

from __future__ import annotations

from django.core.management import get_commands


def test_commands__run_and_seed__provided_by_devstack():
    commands = get_commands()
    assert commands["runcontrolplane"] == "apps.devstack"
    assert commands["seed_demo"] == "apps.devstack"
