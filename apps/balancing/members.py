"""One member of a deployment's upstream, as discovery reads it (:mod:`.membership`) and
the renderer writes it (:mod:`.render`): plain data, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

MemberState = Literal["serving", "loading", "draining", "down"]
MEMBER_STATES: tuple[MemberState, ...] = ("serving", "loading", "draining", "down")


@dataclass(frozen=True, slots=True)
class Member:
    """One replica: ``name`` is its pod or instance id, ``address``/``port`` where it
    listens, ``state`` what the upstream does with it: only ``serving`` members get new
    requests; ``down`` ones stay listed as down (hash-based policies keep every other key
    where it was); ``loading`` and ``draining`` ones are left out. ``weight`` applies
    unless the policy names the member in its weights. ``started_at`` (when known) and
    ``extra`` (source-specific details such as the node or the model) inform people and
    :func:`apps.balancing.membership.members_to_remove`, not equality."""

    name: str
    address: str
    port: int
    state: MemberState = "serving"
    zone: str = ""
    weight: int = 1
    started_at: datetime | None = field(default=None, compare=False)
    extra: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def endpoint(self) -> str:
        """``address:port``, the address bracketed when it is IPv6 (nginx's syntax)."""
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"
