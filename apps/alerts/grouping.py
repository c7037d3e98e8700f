"""When a group of alerts is notified: Alertmanager's aggregation-group timing and
deduplication, as pure functions.

A route's ``group_by`` labels split its alerts into groups. A new group waits
``group_wait`` before its first notification (so that alerts firing together arrive
together); after that it is looked at every ``group_interval``. At each look it is
notified when (Alertmanager's ``DedupStage.needsUpdate``,
https://github.com/prometheus/alertmanager/blob/main/notify/notify.go):

- nothing was notified yet and something fires;
- an alert fires that was not firing in the last notification;
- nothing fires any more but something did in the last notification (all resolved);
- an alert resolved that the last notification did not report resolved;
- otherwise, something still fires and ``repeat_interval`` has passed since the last
  notification; here we also hold the repeat while every firing alert is acknowledged.

Silenced and inhibited alerts are taken out before this, as Alertmanager's mute stages do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

ALL_LABELS = "..."


@dataclass(frozen=True)
class Timers:
    group_wait_s: float = 30.0
    group_interval_s: float = 300.0
    repeat_interval_s: float = 4 * 3600.0

    def __post_init__(self) -> None:
        if self.group_wait_s < 0 or self.group_interval_s <= 0 or self.repeat_interval_s <= 0:
            raise ValueError("group_wait must be ≥ 0; group_interval and repeat_interval > 0")


@dataclass(frozen=True)
class Flush:
    send: bool
    reason: str


def group_key(group_by: Sequence[str], labels: Mapping[str, str]) -> dict[str, str]:
    """The labels that identify an alert's group under ``group_by`` ("..." = all labels)."""
    if ALL_LABELS in group_by:
        return dict(sorted(labels.items()))
    return {name: labels.get(name, "") for name in sorted(set(group_by))}


def needs_update(
    *,
    firing: frozenset[str],
    resolved: frozenset[str],
    last_firing: frozenset[str] | None,
    last_resolved: frozenset[str],
    last_notified_s: float | None,
    now_s: float,
    timers: Timers,
    all_acknowledged: bool = False,
    send_resolved: bool = True,
) -> Flush:
    """Decide one look at a group (see the module docstring)."""
    if last_firing is None:
        if firing:
            return Flush(True, "first notification")
        return Flush(False, "nothing fires")
    if not firing <= last_firing:
        return Flush(True, f"{len(firing - last_firing)} newly firing")
    if not firing:
        if last_firing:
            return Flush(True, "all resolved")
        return Flush(False, "nothing fires")
    if send_resolved and not resolved <= last_resolved:
        return Flush(True, f"{len(resolved - last_resolved)} newly resolved")
    if last_notified_s is not None and now_s - last_notified_s >= timers.repeat_interval_s:
        if all_acknowledged:
            return Flush(False, "every firing alert is acknowledged: no repeat")
        return Flush(True, "repeat interval passed")
    return Flush(False, "no change")
