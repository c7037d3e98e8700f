"""Reads for log ingestion: ingest tokens, a team's ingest limits, and which deployment a
stream belongs to."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

from django.conf import settings

from apps.accounts.services import token_hash
from apps.inventory.label_matchers import Matcher, MatcherError, parse_matchers
from apps.inventory.models import Deployment, DeploymentStatus

from .models import IngestToken, TeamLogSettings
from .storage.base import DeploymentResolver
from .wire import Limits

# Pushes come every second or so from each shipper: the token (with its team and limits) is
# kept in the process for a few seconds, so that a push costs no query for it. A token
# revoked or deleted, or a team's TeamLogSettings changed, in this process takes effect at
# once (the signals in apps.logs.apps clear the cache); in another process (another gunicorn
# worker or pod), within INGEST_TOKEN_CACHE_S.
INGEST_TOKEN_CACHE_S = 5.0
INGEST_TOKEN_CACHE_SIZE = 1_000
_tokens: OrderedDict[str, tuple[float, IngestToken]] = OrderedDict()
_tokens_lock = threading.Lock()


def ingest_token_authenticate(*, token: str, now: float | None = None) -> IngestToken | None:
    """The active ingest token (with its team, and the team's TeamLogSettings when it has
    one: every push reads its limits) whose secret is ``token``; read from the database at
    most every ``INGEST_TOKEN_CACHE_S`` seconds (``now``: :func:`time.monotonic`)."""
    if not token:
        return None
    digest = token_hash(token)
    now = time.monotonic() if now is None else now
    with _tokens_lock:
        cached = _tokens.get(digest)
    if cached is not None and 0 <= now - cached[0] < INGEST_TOKEN_CACHE_S:
        return cached[1]
    found = (
        IngestToken.objects.select_related("team", "team__log_settings")
        .filter(token_hash=digest, revoked_at__isnull=True)
        .first()
    )
    with _tokens_lock:
        _tokens.pop(digest, None)
        if found is not None:
            _tokens[digest] = (now, found)
            while len(_tokens) > INGEST_TOKEN_CACHE_SIZE:
                _tokens.popitem(last=False)
    return found


def ingest_tokens_forget() -> None:
    """Empty this process's cache of ingest tokens (a token or a team's limits changed)."""
    with _tokens_lock:
        _tokens.clear()


@dataclass(frozen=True)
class IngestLimits:
    """What one team may push: rates (0: unlimited), the burst, and the size of a body."""

    lines_per_s: int
    bytes_per_s: int
    burst_s: float
    max_body_bytes: int
    wire: Limits


def wire_limits() -> Limits:
    """Loki's per-stream and per-entry limits, from the settings."""
    max_age = settings.LOGS_REJECT_OLD_SAMPLES_MAX_AGE_S
    grace = settings.LOGS_CREATION_GRACE_PERIOD_S
    return Limits(
        max_line_size=settings.LOGS_MAX_LINE_SIZE,
        max_line_size_truncate=settings.LOGS_MAX_LINE_SIZE_TRUNCATE,
        max_label_names_per_series=settings.LOGS_MAX_LABEL_NAMES_PER_SERIES,
        max_label_name_length=settings.LOGS_MAX_LABEL_NAME_LENGTH,
        max_label_value_length=settings.LOGS_MAX_LABEL_VALUE_LENGTH,
        max_structured_metadata_size=settings.LOGS_MAX_STRUCTURED_METADATA_BYTES,
        max_structured_metadata_entries=settings.LOGS_MAX_STRUCTURED_METADATA_ENTRIES,
        reject_old_samples_max_age_ns=max_age * 10**9 if max_age else None,
        creation_grace_period_ns=grace * 10**9 if grace else None,
    )


def ingest_limits(*, own: TeamLogSettings | None) -> IngestLimits:
    """The settings' limits, with the team's own rates where its TeamLogSettings (``own``,
    None when it has none) has them."""

    def chosen(field: str, default: float) -> float:
        value = getattr(own, field, None) if own is not None else None
        return default if value is None else value

    return IngestLimits(
        lines_per_s=int(chosen("ingest_lines_per_s", settings.LOGS_INGEST_LINES_PER_S)),
        bytes_per_s=int(chosen("ingest_bytes_per_s", settings.LOGS_INGEST_BYTES_PER_S)),
        burst_s=float(chosen("ingest_burst_s", settings.LOGS_INGEST_BURST_S)),
        max_body_bytes=settings.LOGS_MAX_BODY_BYTES,
        wire=wire_limits(),
    )


def deployment_resolver(*, team_id: int) -> DeploymentResolver:
    """Which of the team's deployments (retired ones aside) a stream belongs to: the one
    whose ``prometheus_selector`` matches the stream's labels, with the metrics' semantics
    (every matcher must match; a label the stream lacks reads as ""; regexes are RE2,
    anchored). When several match, the most specific (most matchers) wins, then the oldest.
    The deployments are read once, at the first call: most pushes only write to streams
    that are linked already, and never call it."""
    candidates: list[tuple[int, int, list[Matcher]]] | None = None

    def load() -> list[tuple[int, int, list[Matcher]]]:
        found: list[tuple[int, int, list[Matcher]]] = []
        rows = (
            Deployment.objects.filter(team_id=team_id)
            .exclude(status=DeploymentStatus.RETIRED)
            .exclude(prometheus_selector="")
            .values_list("id", "prometheus_selector")
        )
        for deployment_id, selector in rows:
            try:
                matchers = parse_matchers(selector)
            except MatcherError:
                continue  # saved before validation: it selects nothing, here as in the metrics
            if matchers:
                found.append((-len(matchers), deployment_id, matchers))
        found.sort(key=lambda c: (c[0], c[1]))
        return found

    def resolve(labels: Mapping[str, str]) -> int | None:
        nonlocal candidates
        if candidates is None:
            candidates = load()
        for _, deployment_id, matchers in candidates:
            if all(m.matches(labels.get(m.name, "")) for m in matchers):
                return deployment_id
        return None

    return resolve
