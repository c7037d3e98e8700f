"""bench/balancing.py's measuring parts against a real nginx and simulator replicas: keys
move only to or from the member that changed, and a drain loses no request."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from apps.balancing.render import nginx_binary
from bench.balancing import Nginx, Simulator, part_drain, part_hash
from tests.servers import binary_or_skip

pytestmark = pytest.mark.integration


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[tuple[Simulator, Nginx]]:
    binary = binary_or_skip(nginx_binary(), "nginx", "nginx-light")
    sim = Simulator(5, speed=50.0)
    nginx = Nginx(binary=binary, prefix=tmp_path / "nginx")
    try:
        nginx.start([])
        yield sim, nginx
    finally:
        nginx.stop()
        sim.stop()


def test_part_hash__members_added_removed_or_down__only_their_keys_move(
    rig: tuple[Simulator, Nginx],
) -> None:
    sim, nginx = rig
    rows, sticky = part_hash(sim, nginx, sizes=[3], keys=600)
    assert sticky
    assert [row.change for row in rows] == ["add 1", "remove 1", "mark 1 down"]
    for row in rows:
        assert row.movement.keys == 600
        assert row.movement.stray == 0, row
        assert 0 < row.movement.moved == row.movement.on_changed, row


def test_part_drain__clients_closing_connections__no_request_fails_replica_gone(
    rig: tuple[Simulator, Nginx], tmp_path: Path
) -> None:
    binary_or_skip(shutil.which("wrk"), "wrk", "wrk")
    sim, nginx = rig
    before = {e["pod"] for e in sim.endpoints()}
    result = part_drain(sim, nginx, keepalive=False, workdir=tmp_path)
    assert result.requests > 0
    assert result.streams_ok > 0
    assert result.details["most_in_flight_on_member"] > 0
    assert (result.non_2xx, result.socket_errors, result.streams_broken) == (0, 0, 0)
    assert before - {e["pod"] for e in sim.endpoints()} == {"chat-3"}
