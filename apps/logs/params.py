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
from apps.inventory.models import Deployment
from apps.logs.logql.units import parse_duration_ns
from apps.logs.query import Cursor, line_hash

SECOND_NS = 1_000_000_000


class ParamError(ValueError):
    """A parameter that cannot be read; the message says which and why."""


def now_ns() -> int:
    return time.time_ns()


def parse_time_ns(value: str, *, name: str) -> int:
    """A time as Loki's API takes it: integer nanoseconds since the epoch (an integer of
    at most 10 digits is seconds), a unix timestamp in seconds with a fraction, or
    RFC 3339 (``2026-01-10T12:00:00.5Z``)."""
    text = value.strip()
    if text.lstrip("-").isdigit():
        number = int(text)
        return number * SECOND_NS if len(text.lstrip("-")) <= 10 else number
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds):
            raise ParamError(f"{name}: {value!r} is not a finite time")
        return round(seconds * SECOND_NS)
    try:
        parsed = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise ParamError(
            f"{name}: cannot parse {value!r} as nanoseconds, unix seconds or RFC 3339"
        ) from None
    if parsed.tzinfo is None:
        raise ParamError(f"{name}: {value!r} has no time zone (add Z or an offset)")
    seconds_part = int(parsed.timestamp() // 1)
    return seconds_part * SECOND_NS + parsed.microsecond * 1000


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
        if not text.isdigit():
            raise ValidationError({"team": ["Expected a team id (digits)."]})
        team_id = int(text)
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
