"""The development commands keep their names, now that they live in apps.devstack."""

from __future__ import annotations

from django.core.management import get_commands


def test_commands__run_and_seed__provided_by_devstack():
    commands = get_commands()
    assert commands["runcontrolplane"] == "apps.devstack"
    assert commands["seed_demo"] == "apps.devstack"


def test_fastpath_env__demo__loopback_allowed_for_the_fast_path_only_unless_set() -> None:
    from apps.devstack.management.commands.runcontrolplane import fastpath_env

    shared = {"PATH": "/bin"}

    assert fastpath_env(shared, demo=True) == {
        "PATH": "/bin",
        "OUTBOUND_ALLOWED_NETWORKS": "127.0.0.0/8",
    }
    assert shared == {"PATH": "/bin"}  # web and worker keep theirs
    assert fastpath_env(shared, demo=False) == shared
    chosen = {"OUTBOUND_ALLOWED_NETWORKS": "10.0.0.0/8"}
    assert fastpath_env(chosen, demo=True) == chosen
