"""What the log read APIs (Loki's query API and the REST API) share: times and durations
read the way Loki reads them, opaque cursors, and the one team a request reads.

The team always comes from the caller's memberships: a user in one team reads that team;
a user in several names one of theirs with ``team`` (any other answers 403), and is asked
to when they do not.
"""

from __future__ import annotations

import base64
import binascii
import math
import time
from datetime import datetime

from rest_framework.exceptions import PermissionDenied, ValidationError

from apps.accounts.models import Team
from apps.accounts.selectors import AnyUser, team_ids_for_user
from apps.core.digits import ascii_int
from apps.inventory.models import Deployment
from apps.logs.logql.units import parse_duration_ns
from apps.logs.query import Cursor, line_hash

SECOND_NS = 1_000_000_000


class ParamError(ValueError):
    """A parameter that cannot be read; the message says which and why."""


def now_ns() -> int:
    return time.time_ns()


def _in_range(ns: int, value: str, name: str) -> int:
    # What the stores hold: 64-bit nanoseconds (years 1677 to 2262).
    if not -(2**63) <= ns < 2**63:
        raise ParamError(f"{name}: {value!r} is out of range (years 1677 to 2262)")
    return ns


def parse_time_ns(value: str, *, name: str) -> int:
    """A time as Loki's API takes it: integer nanoseconds since the epoch (an integer of
    at most 10 digits is seconds), a unix timestamp in seconds with a fraction, or
    RFC 3339 (``2026-01-10T12:00:00.5Z``)."""
    text = value.strip()
    digits = text.removeprefix("-")
    number = ascii_int(digits, max_digits=19)
    if number is not None:
        number = -number if text.startswith("-") else number
        return _in_range(number * SECOND_NS if len(digits) <= 10 else number, value, name)
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds):
            raise ParamError(f"{name}: {value!r} is not a finite time")
        ns = seconds * SECOND_NS  # infinite past 1.8e299 seconds
        return _in_range(round(ns) if math.isfinite(ns) else 2**63, value, name)
    try:
        parsed = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise ParamError(
            f"{name}: cannot parse {value!r} as nanoseconds, unix seconds or RFC 3339"
        ) from None
    if parsed.tzinfo is None:
        raise ParamError(f"{name}: {value!r} has no time zone (add Z or an offset)")
    seconds_part = int(parsed.timestamp() // 1)
    return _in_range(seconds_part * SECOND_NS + parsed.microsecond * 1000, value, name)


def parse_duration_param(value: str, *, name: str) -> int:
    """A duration as Loki's ``step`` and ``since`` take it: ``5m``, ``1h30m`` or seconds
    (``15``, ``0.5``), in nanoseconds, longer than zero."""
    text = value.strip()
    ns = parse_duration_ns(text)
    if ns is None:
        try:
            seconds = float(text)
        except ValueError:
            raise ParamError(
                f"{name}: cannot parse {value!r} as a duration (5m, 1h) or seconds"
            ) from None
        ns = round(seconds * SECOND_NS) if math.isfinite(seconds) else 0
    if ns <= 0:
        raise ParamError(f"{name}: {value!r} must be longer than zero")
    return ns


def default_step_ns(start_ns: int, end_ns: int) -> int:
    """Loki's default step for a range query: about 250 points, at least one second."""
    return max((end_ns - start_ns) // SECOND_NS // 250, 1) * SECOND_NS


# --- cursors -------------------------------------------------------------------------------


def encode_cursor(cursor: Cursor, direction: str) -> str:
    """An opaque token for a position in the store's order (time, stream, line): the line
    is kept as its hash, so a token stays short whatever the line."""
    timestamp_ns, stream_id, line = cursor
    raw = f"{direction[0]}:{timestamp_ns}:{stream_id}:{line_hash(line)}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(token: str) -> tuple[str, int, str, str]:
    """``(direction, timestamp_ns, stream_id, line hash)`` of a token from
    :func:`encode_cursor`."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        letter, timestamp, stream_id, hash_ = raw.split(":")
        direction = {"b": "backward", "f": "forward"}[letter]
        return direction, int(timestamp), stream_id, hash_
    except (binascii.Error, UnicodeDecodeError, ValueError, KeyError):
        raise ParamError("cursor: not a cursor this API returned") from None


# --- team and deployment -------------------------------------------------------------------


def request_team_id(*, user: AnyUser, requested: str | None) -> int:
    """The team a request reads: the one ``requested`` (which must be one of the user's),
    else the user's only team. Raises DRF's 400 / 403."""
    teams = team_ids_for_user(user=user)
    superuser = bool(getattr(user, "is_superuser", False))
    if requested not in (None, ""):
        text = str(requested).strip()
        parsed = ascii_int(text)
        if parsed is None:
            raise ValidationError({"team": ["Expected a team id (digits)."]})
        team_id = parsed
        if team_id in teams or (superuser and Team.objects.filter(pk=team_id).exists()):
            return team_id
        raise PermissionDenied(f"You are not a member of team {team_id}.")
    if len(teams) == 1 and not superuser:
        return teams[0]
    if not teams and not superuser:
        raise PermissionDenied("Your user is not a member of any team.")
    listed = ", ".join(str(t) for t in sorted(teams)) or "any"
    raise ValidationError(
        {"team": [f"You can read several teams' logs ({listed}): say which one with team=<id>."]}
    )


def team_deployment_id(*, team_id: int, requested: int | None) -> int | None:
    """``requested`` when it is a deployment of the team (else 400), or ``None``."""
    if requested is None:
        return None
    if not Deployment.objects.filter(pk=requested, team_id=team_id).exists():
        raise ValidationError({"deployment": [f"No deployment {requested} in team {team_id}."]})
    return requested
