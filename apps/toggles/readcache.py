"""What the gateway read path keeps so that it does not touch the database when nothing
changed.

- **The team's version** lives in the shared cache (Redis in production) under
  ``toggles:<ns>:version:<team>``. A change's transaction bumps the version in the database
  (:func:`~apps.toggles.services.toggle_version_bump`); once it commits,
  :func:`version_announce` stores the new version (only ever upwards: an atomic
  "set if greater", so two commits announced out of order cannot move it back) and
  publishes it on the ``toggles:changes`` channel. When the key is missing (Redis was
  emptied, or it expired after ``TOGGLES_VERSION_TTL_S``, the safety net for a change
  announced while Redis was unreachable) it is read from the database once and stored back.
- **The team's toggles** are kept in each server process, keyed by the version they were
  read at (:func:`team_toggles_at`). A request reads the version (one cache round trip,
  together with the token epoch below) and finds the toggles in process memory; only a new
  version reads the database. The version is read *before* the rows
  (:func:`~apps.toggles.selectors.team_toggles`), so content is never older than the
  version it is labelled with: an answer's ETag never promises content older than it has.
- **Gateway tokens** that authenticated once are kept in process memory (by the hash of
  their secret) with the *token epoch*, a counter in the cache that every revocation or
  deletion bumps once it commits. A request whose token is known and whose epoch is
  unchanged is authenticated without the database; a changed epoch forgets every known
  token, so a revoked token stops working on the next request everywhere.
- **Waiting for a change** (the change stream's long-poll): a daemon thread per process
  subscribes to the channel and wakes the waiting requests of the team; each waiter also
  re-reads the version at least once a second, so a lost message delays it by a second at
  most. Without Redis (``make run``'s file cache) waiters re-read the version every 0.25 s.

A cache that fails (Redis down) is never fatal: the version and the token are then read
from the database on every request, slower but correct.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import structlog
from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache

from apps.core.digits import ascii_int

from .selectors import TeamToggles, team_toggle_version, team_toggles

logger = structlog.get_logger("controlplane.toggles")

# Part of every key, the same in every process; tests change it (forget()) so that each
# starts from an empty cache.
_namespace = "0"
CHANGES_CHANNEL = "toggles:changes"
KNOWN_TOKENS_MAX = 10_000
TOKEN_TOUCH_S = 60.0


def _key(name: str) -> str:
    return f"toggles:{_namespace}:{name}"


def version_key(team_id: int) -> str:
    return _key(f"version:{team_id}")


def epoch_key() -> str:
    return _key("token-epoch")


_client_memo: tuple[Any, Any] = (None, None)


def _redis() -> Any:
    """The redis-py client behind Django's RedisCache, or None for another cache. Kept per
    process: Django's cache builds a client object on every call, which costs more than the
    round trip itself on this path."""
    global _client_memo
    backend = caches["default"]
    if not isinstance(backend, RedisCache):
        return None
    if _client_memo[0] is not backend:
        client = getattr(backend, "_cache").get_client(None, write=True)  # noqa: B009 - private in the stubs
        _client_memo = (backend, client)
    return _client_memo[1]


def _numbers(names: list[str]) -> list[int | None]:
    """The integers stored under ``names`` in the shared cache (one MGET on Redis)."""
    client = _redis()
    if client is None:
        found = cache.get_many(names)
        return [found.get(name) for name in names]
    backend = caches["default"]
    raw = client.mget([backend.make_key(name) for name in names])
    return [None if value is None else int(value) for value in raw]


# KEYS[1]: the version key. ARGV: version, TTL (s), channel ("": do not publish), message.
# Stores the version only when it is greater than the stored one (or none is stored).
_SET_GREATER_LUA = """
local current = tonumber(redis.call('GET', KEYS[1]) or '-1')
if tonumber(ARGV[1]) > current then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
  if ARGV[3] ~= '' then redis.call('PUBLISH', ARGV[3], ARGV[4]) end
  return 1
end
return 0
"""


def _version_store(team_id: int, version: int, *, publish: bool) -> None:
    ttl = settings.TOGGLES_VERSION_TTL_S
    client = _redis()
    if client is None:
        current = cache.get(version_key(team_id))
        if current is None or version > current:
            cache.set(version_key(team_id), version, timeout=ttl)
        return
    channel = cache.make_key(CHANGES_CHANNEL) if publish else ""
    client.eval(
        _SET_GREATER_LUA,
        1,
        cache.make_key(version_key(team_id)),
        version,
        ttl,
        channel,
        f"{team_id}:{version}",
    )


def version_announce(team_id: int, version: int) -> None:
    """After a commit (see :func:`~apps.toggles.services.toggle_version_listen`): store the
    team's new version and wake whoever waits for it, here and in other processes."""
    try:
        _version_store(team_id, version, publish=True)
    except Exception:  # noqa: BLE001 - the change is committed; readers fall back on the TTL
        logger.warning("toggles-version-announce-failed", team_id=team_id, version=version)
    _version_confirm(team_id, version, time.monotonic())
    _waiters.notify(team_id)


def team_version(team_id: int) -> int:
    """The team's current version: from the cache, else from the database (stored back)."""
    try:
        [stored] = _numbers([version_key(team_id)])
    except Exception:  # noqa: BLE001 - a cache outage reads the database instead
        logger.warning("toggles-cache-unavailable")
        return team_toggle_version(team_id=team_id)
    return stored if stored is not None else _version_from_database(team_id)


def _version_from_database(team_id: int) -> int:
    version = team_toggle_version(team_id=team_id)
    try:
        _version_store(team_id, version, publish=False)
    except Exception:  # noqa: BLE001 - read again next time
        logger.warning("toggles-cache-unavailable")
    return version


# --------------------------------------------------------------------------- toggles


@dataclass
class _TeamEntry:
    toggles: TeamToggles
    rendered: dict[str, bytes] = field(default_factory=dict)


_teams: dict[int, _TeamEntry] = {}


def team_entry(team_id: int, version: int) -> _TeamEntry:
    """The team's toggles as of ``version`` or later, from this process's memory when it
    holds that version, else from the database. The entry's ``toggles.version`` is the
    version the content belongs to: label answers with it, not with ``version``."""
    entry = _teams.get(team_id)
    if entry is not None and entry.toggles.version == version:
        return entry
    loaded = _TeamEntry(team_toggles(team_id=team_id))
    if loaded.toggles.version < version:
        # The cache is ahead of the database it describes (the database was restored or
        # recreated under a running cache): the database wins, or every request would
        # read it again until the key expires.
        logger.warning("toggles-version-ahead-of-database", team_id=team_id, cached=version,
                       database=loaded.toggles.version)  # fmt: skip
        _version_confirm(team_id, loaded.toggles.version, time.monotonic(), reset=True)
        try:
            cache.set(version_key(team_id), loaded.toggles.version, settings.TOGGLES_VERSION_TTL_S)
        except Exception:  # noqa: BLE001 - read again next time
            logger.warning("toggles-cache-unavailable")
    current = _teams.get(team_id)
    if current is None or current.toggles.version <= loaded.toggles.version:
        _teams[team_id] = loaded
    return loaded


def team_toggles_at(team_id: int, version: int) -> TeamToggles:
    return team_entry(team_id, version).toggles


# --------------------------------------------------------------------------- tokens


@dataclass
class KnownToken:
    token_id: int
    team_id: int
    epoch: Any
    touched: float  # time.monotonic() of the last last_used_at write


_tokens: dict[str, KnownToken] = {}
_UNKNOWN_EPOCH = object()  # never equal to a stored epoch: the token is checked again


def tokens_epoch() -> Any:
    """The current token epoch (read before a token is looked up in the database)."""
    try:
        [epoch] = _numbers([epoch_key()])
    except Exception:  # noqa: BLE001 - the token is then looked up every time
        return _UNKNOWN_EPOCH
    return epoch or 0


def token_remember(*, digest: str, token_id: int, team_id: int, epoch: Any) -> None:
    if len(_tokens) >= KNOWN_TOKENS_MAX:
        _tokens.clear()
    _tokens[digest] = KnownToken(token_id, team_id, epoch, time.monotonic())


def tokens_changed() -> None:
    """After a revocation or deletion commits: every process forgets its known tokens."""
    _tokens.clear()
    _epoch.clear()
    try:
        cache.add(epoch_key(), 0, timeout=None)
        cache.incr(epoch_key())
        client = _redis()
        if client is not None:
            client.publish(cache.make_key(CHANGES_CHANNEL), "tokens")
    except Exception:  # noqa: BLE001 - other processes find out after a cache outage ends
        logger.warning("toggles-token-epoch-failed")


@dataclass(frozen=True)
class KnownRead:
    token: KnownToken
    version: int
    touch: bool  # the token's last_used_at is a minute old in this process


def known_read(digest: str) -> KnownRead | None:
    """A known, unrevoked token's team and that team's current version, without the
    database; None when the token must be authenticated the slow way (unknown here, tokens
    changed, or the cache failed). While this process is subscribed to the changes channel,
    a version and epoch confirmed less than ``CONFIRMED_FOR_S`` ago are used as they are
    (a change or a revocation reaches the process as a message meanwhile); otherwise one
    cache round trip reads both."""
    known = _tokens.get(digest)
    if known is None:
        return None
    state = _confirmed(known.team_id)
    if state is None:
        return None
    epoch, version = state
    if epoch != known.epoch:
        _tokens.clear()
        return None
    now = time.monotonic()
    touch = now - known.touched >= TOKEN_TOUCH_S
    if touch:
        known.touched = now
    return KnownRead(known, version, touch)


# Confirmed in this process: team -> (version, when), and (epoch, when). Trusted while the
# watcher thread is subscribed, for CONFIRMED_FOR_S at most (a bound on a lost message).
CONFIRMED_FOR_S = 1.0
_versions: dict[int, tuple[int, float]] = {}
_epoch: list[tuple[int, float]] = []
_subscribed = threading.Event()


def _confirmed(team_id: int) -> tuple[int, int] | None:
    """(token epoch, team version), from this process when recently confirmed, else from
    the cache (and the database when the cache lacks the version); None if the cache failed."""
    now = time.monotonic()
    if _subscribed.is_set():
        held, epoch = _versions.get(team_id), _epoch[0] if _epoch else None
        if held and epoch and now - held[1] < CONFIRMED_FOR_S and now - epoch[1] < CONFIRMED_FOR_S:
            return epoch[0], held[0]
    else:
        _waiters.watch()
    try:
        epoch_read, version = _numbers([epoch_key(), version_key(team_id)])
    except Exception:  # noqa: BLE001 - the slow way reads the database
        logger.warning("toggles-cache-unavailable")
        return None
    if version is None:
        version = _version_from_database(team_id)
    _version_confirm(team_id, version, now)
    _epoch[:] = [(epoch_read or 0, now)]
    return epoch_read or 0, version


def _version_confirm(team_id: int, version: int, when: float, *, reset: bool = False) -> None:
    held = _versions.get(team_id)
    # Never backwards (a read that raced a newer announcement), unless the database said so.
    _versions[team_id] = (version if reset or held is None else max(version, held[0]), when)


# --------------------------------------------------------------------------- waiting


class _Waiters:
    """Requests waiting for a team's next version in this process, woken by announcements
    (this process's own commits, and the channel's messages through the watcher thread)."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._generation: dict[int, int] = {}
        self._waiting = 0
        self._watcher: threading.Thread | None = None

    @property
    def waiting(self) -> int:
        return self._waiting

    def generation(self, team_id: int) -> int:
        return self._generation.get(team_id, 0)

    def notify(self, team_id: int) -> None:
        with self._condition:
            self._generation[team_id] = self._generation.get(team_id, 0) + 1
            self._condition.notify_all()

    def enter(self, limit: int) -> bool:
        with self._condition:
            if self._waiting >= limit:
                return False
            self._waiting += 1
        self.watch()
        return True

    def leave(self) -> None:
        with self._condition:
            self._waiting -= 1

    def wait(self, team_id: int, generation: int, timeout: float) -> None:
        """Until the team is announced after ``generation`` was read, or ``timeout``."""
        with self._condition:
            self._condition.wait_for(lambda: self.generation(team_id) != generation, timeout)

    def watch(self) -> None:
        """Start the thread that listens to the changes channel (once per process)."""
        if self._watcher is not None and self._watcher.is_alive():
            return
        with self._condition:
            if self._watcher is not None and self._watcher.is_alive():
                return
            if _redis() is None:
                return
            self._watcher = threading.Thread(
                target=self._listen, name="toggles-changes", daemon=True
            )
            self._watcher.start()

    def _listen(self) -> None:
        while True:
            try:
                pubsub = _redis().pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(cache.make_key(CHANGES_CHANNEL))
                # Whatever was announced while not subscribed is read from the cache again.
                _versions.clear()
                _epoch.clear()
                _subscribed.set()
                while True:
                    message = pubsub.get_message(timeout=5.0)
                    if message and message.get("type") == "message":
                        self._received(bytes(message["data"]).decode())
            except Exception:  # noqa: BLE001 - reads use the cache; waiters re-read every second
                _subscribed.clear()
                logger.warning("toggles-changes-subscription-lost")
                time.sleep(1.0)

    def _received(self, data: str) -> None:
        if data == "tokens":
            _tokens.clear()
            _epoch.clear()
            return
        team, _, version = data.partition(":")
        team_id, version_number = ascii_int(team), ascii_int(version)
        if team_id is not None and version_number is not None:
            _version_confirm(team_id, version_number, time.monotonic())
            self.notify(team_id)


_waiters = _Waiters()


def waiting_count() -> int:
    """Requests waiting for a change in this process now."""
    return _waiters.waiting


def recheck_interval_s() -> float:
    """How long a waiter sleeps before reading the version again when nothing woke it."""
    return 1.0 if _redis() is not None else 0.25


def change_wait(*, team_id: int, after: int, wait_s: float, limit: int) -> int | None:
    """Wait up to ``wait_s`` for the team's version to pass ``after``; the version then,
    or None when no waiting slot was free in this process (``limit`` at once)."""
    deadline = time.monotonic() + wait_s
    if not _waiters.enter(limit):
        return None
    try:
        while True:
            generation = _waiters.generation(team_id)
            version = team_version(team_id)
            remaining = deadline - time.monotonic()
            if version > after or remaining <= 0:
                return version
            _waiters.wait(team_id, generation, min(remaining, recheck_interval_s()))
    finally:
        _waiters.leave()


def forget() -> None:
    """Start from empty caches in this process and fresh keys in the shared cache (tests)."""
    global _namespace
    _namespace = uuid.uuid4().hex[:8]
    _teams.clear()
    _tokens.clear()
    _versions.clear()
    _epoch.clear()
