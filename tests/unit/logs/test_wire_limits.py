"""Loki's limits on decoded pushes (what is accepted, what is refused and why), the stream
fingerprint, and the bounded decompression that keeps a zip bomb from costing memory."""

from __future__ import annotations

import hashlib
import tracemalloc
import zlib

import pytest

from apps.logs.wire import (
    BodyTooLarge,
    DecodeError,
    Limits,
    PushedEntry,
    PushedStream,
    decode_loki_push,
    stream_fingerprint,
    validate_push,
)
from apps.logs.wire.body import decode_content_encoding

NOW = 1_764_400_000_000_000_000
SECOND = 1_000_000_000
LIMITS = Limits()


def stream(
    labels: dict[str, str], *entries: PushedEntry, origin: str = "streams[0]"
) -> PushedStream:
    return PushedStream(labels=tuple(sorted(labels.items())), entries=entries, origin=origin)


def entry(line: str = "x", at: int = NOW, **fields: object) -> PushedEntry:
    return PushedEntry(timestamp_ns=at, line=line, **fields)  # type: ignore[arg-type]


def test_limits__defaults__lokis() -> None:
    assert LIMITS.max_line_size == 256 * 1024
    assert LIMITS.max_line_size_truncate is False
    assert LIMITS.max_label_names_per_series == 15
    assert LIMITS.max_label_name_length == 1024
    assert LIMITS.max_label_value_length == 2048
    assert LIMITS.reject_old_samples_max_age_ns == 7 * 24 * 3600 * SECOND
    assert LIMITS.creation_grace_period_ns == 600 * SECOND


def test_validate__all_valid__accepted_as_sent() -> None:
    pushed = [stream({"app": "a"}, entry("1"), entry("2", NOW + 1)), stream({"app": "b"}, entry())]
    result = validate_push(pushed, limits=LIMITS, now_ns=NOW)
    assert result.refused == ()
    assert [s.labels for s in result.accepted] == [(("app", "a"),), (("app", "b"),)]
    assert [e.line for e in result.accepted[0].entries] == ["1", "2"]
    assert result.accepted_lines == 3
    assert result.error_text() == ""


def test_validate__too_many_labels__whole_stream_refused_others_kept() -> None:
    labels = {f"l{i}": "v" for i in range(16)}
    pushed = [
        stream({"app": "ok"}, entry("kept")),
        stream(labels, entry("a"), entry("bb"), origin="streams[1]"),
    ]
    result = validate_push(pushed, limits=LIMITS, now_ns=NOW)
    assert [s.labels for s in result.accepted] == [(("app", "ok"),)]
    [refusal] = result.refused
    assert (refusal.origin, refusal.entry, refusal.reason) == (
        "streams[1]",
        None,
        "max_label_names_per_series",
    )
    assert (refusal.entries, refusal.bytes) == (2, 3)
    assert "16 labels, more than the limit of 15" in refusal.message
    assert result.refused_lines == 2
    assert result.error_text().startswith('streams[1]: stream {l0="v", l1="v"')
    # Exactly at the limit is fine.
    fifteen = {f"l{i}": "v" for i in range(15)}
    assert validate_push([stream(fifteen, entry())], limits=LIMITS, now_ns=NOW).refused == ()


@pytest.mark.parametrize(
    ("labels", "reason"),
    [
        ({}, "missing_labels"),
        ({"1abc": "v"}, "invalid_labels"),
        ({"app.name": "v"}, "invalid_labels"),
        ({"a" * 1025: "v"}, "label_name_too_long"),
        ({"app": "v" * 2049}, "label_value_too_long"),
    ],
)
def test_validate__label_rule_broken__stream_refused(labels: dict[str, str], reason: str) -> None:
    result = validate_push([stream(labels, entry())], limits=LIMITS, now_ns=NOW)
    assert result.accepted == ()
    assert [r.reason for r in result.refused] == [reason]


def test_validate__label_lengths_at_limit__accepted() -> None:
    labels = {"a" * 1024: "v" * 2048}
    assert validate_push([stream(labels, entry())], limits=LIMITS, now_ns=NOW).refused == ()


def test_validate__duplicate_label_names__stream_refused() -> None:
    pushed = PushedStream(labels=(("a", "1"), ("a", "2")), entries=(entry(),))
    [refusal] = validate_push([pushed], limits=LIMITS, now_ns=NOW).refused
    assert refusal.reason == "duplicate_label_names"


def test_validate__too_old_and_too_new__entries_refused_at_boundaries() -> None:
    oldest = NOW - LIMITS.reject_old_samples_max_age_ns  # type: ignore[operator]
    newest = NOW + LIMITS.creation_grace_period_ns  # type: ignore[operator]
    pushed = [
        stream(
            {"app": "a"},
            entry("too old", oldest - 1),
            entry("oldest", oldest),
            entry("newest", newest),
            entry("too new", newest + 1),
        )
    ]
    result = validate_push(pushed, limits=LIMITS, now_ns=NOW)
    assert [e.line for e in result.accepted[0].entries] == ["oldest", "newest"]
    assert [(r.entry, r.reason) for r in result.refused] == [
        (0, "greater_than_max_sample_age"),
        (3, "too_far_in_future"),
    ]
    assert result.refused[0].location == "streams[0] entry 0"
    assert f"the oldest accepted is {oldest}" in result.refused[0].message


def test_validate__age_checks_off__anything_accepted() -> None:
    limits = Limits(reject_old_samples_max_age_ns=None, creation_grace_period_ns=None)
    pushed = [stream({"a": "b"}, entry("old", 0), entry("new", 2**63 - 1))]
    assert validate_push(pushed, limits=limits, now_ns=NOW).accepted_lines == 2


def test_validate__long_line__refused_by_bytes_not_characters() -> None:
    limits = Limits(max_line_size=10)
    pushed = [stream({"a": "b"}, entry("é" * 5), entry("é" * 6, NOW + 1), entry("x" * 10, NOW + 2))]
    result = validate_push(pushed, limits=limits, now_ns=NOW)
    assert [e.line for e in result.accepted[0].entries] == ["é" * 5, "x" * 10]
    [refusal] = result.refused
    assert (refusal.entry, refusal.reason, refusal.bytes) == (1, "line_too_long", 12)
    assert "the line is 12 bytes, more than the limit of 10" in refusal.message


def test_validate__long_line_with_truncate__cut_on_character_boundary() -> None:
    limits = Limits(max_line_size=11, max_line_size_truncate=True)
    original = entry("ab" + "é" * 10, trace_id="ab" * 16, severity="warn")
    result = validate_push([stream({"a": "b"}, original)], limits=limits, now_ns=NOW)
    [kept] = result.accepted[0].entries
    assert kept.line == "ab" + "é" * 4  # 10 bytes: the 11th is the first half of an é
    assert (kept.trace_id, kept.severity) == (original.trace_id, "warn")
    assert (result.truncated, result.refused) == (1, ())


def test_validate__huge_line_default_limit__refused() -> None:
    result = validate_push(
        [stream({"a": "b"}, entry("x" * (256 * 1024 + 1)))], limits=LIMITS, now_ns=NOW
    )
    assert [r.reason for r in result.refused] == ["line_too_long"]
    assert result.accepted == ()


def test_validate__structured_metadata_limits__entry_refused() -> None:
    many = tuple((f"k{i}", "v") for i in range(129))
    large = (("k", "v" * (64 * 1024)),)
    pushed = [stream({"a": "b"}, entry("many", metadata=many), entry("large", metadata=large))]
    result = validate_push(pushed, limits=LIMITS, now_ns=NOW)
    assert [r.reason for r in result.refused] == [
        "structured_metadata_too_many",
        "structured_metadata_too_large",
    ]
    ok = (("k", "v" * (64 * 1024 - 1)),)
    assert (
        validate_push([stream({"a": "b"}, entry(metadata=ok))], limits=LIMITS, now_ns=NOW).refused
        == ()
    )


def test_validate__same_stream_time_and_line__one_entry_first_kept() -> None:
    first = entry("same", metadata=(("n", "1"),))
    pushed = [
        stream({"app": "a"}, first, entry("same", metadata=(("n", "2"),)), entry("other")),
        stream({"app": "b"}, entry("same")),
        stream({"app": "a"}, entry("same"), entry("same", NOW + 1), origin="streams[2]"),
    ]
    result = validate_push(pushed, limits=LIMITS, now_ns=NOW)
    merged, other = result.accepted
    assert merged.labels == (("app", "a"),)
    assert merged.entries == (first, entry("other"), entry("same", NOW + 1))
    assert other.entries == (entry("same"),)
    assert result.duplicates == 2
    assert result.refused == ()


def test_validate__plain_stream_then_same_labels_again__duplicate_across_them_dropped() -> None:
    pushed = [
        stream({"app": "a"}, entry("x"), entry("y", NOW + 1)),
        stream({"app": "a"}, entry("x"), entry("z", NOW + 2), origin="streams[1]"),
    ]
    result = validate_push(pushed, limits=LIMITS, now_ns=NOW)
    [merged] = result.accepted
    assert merged.entries == (entry("x"), entry("y", NOW + 1), entry("z", NOW + 2))
    assert (result.duplicates, result.accepted_bytes) == (1, 3)


def test_validate__plain_stream_sent_line_twice__one_entry_kept() -> None:
    pushed = [stream({"app": "a"}, entry("x"), entry("y"), entry("x"))]
    result = validate_push(pushed, limits=LIMITS, now_ns=NOW)
    assert result.accepted[0].entries == (entry("x"), entry("y"))
    assert (result.duplicates, result.accepted_bytes) == (1, 2)


def test_validate__accepted_bytes__utf8_size_of_the_kept_lines_only() -> None:
    limits = Limits(max_line_size=6, max_line_size_truncate=False)
    pushed = [
        stream({"app": "plain"}, entry("éé"), entry("ab", NOW + 1)),
        stream({"app": "b"}, entry("toolong!"), entry("ok"), entry("ok"), entry("né", NOW + 1)),
    ]
    result = validate_push(pushed, limits=limits, now_ns=NOW)
    kept = [e.line for s in result.accepted for e in s.entries]
    assert kept == ["éé", "ab", "ok", "né"]
    assert result.accepted_bytes == sum(len(line.encode()) for line in kept) == 11
    truncating = Limits(max_line_size=3, max_line_size_truncate=True)
    cut = validate_push([stream({"a": "b"}, entry("abcdef"))], limits=truncating, now_ns=NOW)
    assert cut.accepted_bytes == 3


def test_validate__refused_entry__not_counted_as_seen() -> None:
    limits = Limits(max_line_size=4, max_line_size_truncate=True)
    # Two different long lines truncated to the same text are one entry once stored.
    pushed = [stream({"a": "b"}, entry("abcdXX"), entry("abcdYY"))]
    result = validate_push(pushed, limits=limits, now_ns=NOW)
    assert result.accepted[0].entries == (entry("abcd"),)
    assert (result.duplicates, result.truncated) == (1, 2)


def test_validate__many_refusals__error_text_bounded() -> None:
    pushed = [stream({"a": "b"}, *(entry(str(i), 0) for i in range(25)))]
    result = validate_push(pushed, limits=LIMITS, now_ns=NOW)
    text = result.error_text(most=3)
    assert text.count("\n") == 3
    assert text.endswith("... and 22 more refusals")


def test_validate__decoded_loki_push__refusals_name_the_request_place() -> None:
    body = (
        b'{"streams": [{"stream": {"app": "a"}, "values": [["%d", "ok"], ["1", "ancient"]]},'
        b' {"stream": {"bad.name": "x"}, "values": [["%d", "y"]]}]}' % (NOW, NOW)
    )
    result = validate_push(
        decode_loki_push(body, content_type="application/json"), limits=LIMITS, now_ns=NOW
    )
    assert [e.line for e in result.accepted[0].entries] == ["ok"]
    assert [r.location for r in result.refused] == ["streams[0] entry 1", "streams[1]"]


# ------------------------------------------------------------------------ fingerprint


def test_fingerprint__canonical_text__stable_value() -> None:
    labels = (("app", "api"), ("env", "prod"))
    expected = hashlib.sha256(b'{app="api", env="prod"}').hexdigest()
    assert stream_fingerprint(labels) == expected
    assert stream({"env": "prod", "app": "api"}).fingerprint == expected


def test_fingerprint__ambiguous_joins__differ() -> None:
    assert stream_fingerprint((("a", 'x", b="y'),)) != stream_fingerprint((("a", "x"), ("b", "y")))
    assert stream_fingerprint((("a", "1"),)) != stream_fingerprint((("a", "2"),))
    assert stream_fingerprint((("a", "1"),)) != stream_fingerprint((("b", "1"),))


# --------------------------------------------------------------------- bounded bodies


def gzip_of_zeros(size: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = bytes(1024 * 1024)
    parts = [packer.compress(chunk) for _ in range(size // len(chunk))]
    return b"".join([*parts, packer.flush()])


def test_gzip_bomb__stopped_at_limit__memory_bounded() -> None:
    bomb = gzip_of_zeros(256 * 1024 * 1024)  # 256 MiB of zeros in about 250 KB
    assert len(bomb) < 1024 * 1024
    limit = 2 * 1024 * 1024
    tracemalloc.start()
    try:
        with pytest.raises(BodyTooLarge, match="decompresses to more than the limit"):
            decode_loki_push(
                bomb, content_type="application/json", content_encoding="gzip", max_bytes=limit
            )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * limit


def test_decompressed_size__exactly_at_limit__accepted() -> None:
    assert decode_content_encoding(b"plain", "identity", max_bytes=5) == b"plain"
    packer = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)
    body = packer.compress(b"a" * 1000) + packer.flush()
    assert decode_content_encoding(body, "gzip", max_bytes=1000) == b"a" * 1000
    with pytest.raises(BodyTooLarge):
        decode_content_encoding(body, "gzip", max_bytes=999)


def test_gzip__truncated_corrupt_or_empty__decode_error() -> None:
    packer = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)
    body = packer.compress(b"some text " * 100) + packer.flush()
    with pytest.raises(DecodeError, match="truncated"):
        decode_content_encoding(body[:-10], "gzip", max_bytes=10**6)
    with pytest.raises(DecodeError, match="corrupt"):
        decode_content_encoding(b"not gzip at all", "gzip", max_bytes=10**6)
    with pytest.raises(DecodeError, match="empty"):
        decode_content_encoding(b"", "gzip", max_bytes=10**6)
    with pytest.raises(DecodeError, match="corrupt"):
        decode_content_encoding(body + b"trailing", "gzip", max_bytes=10**6)


def test_deflate__trailing_bytes__decode_error() -> None:
    body = zlib.compress(b"payload") + b"junk"
    with pytest.raises(DecodeError, match="4 bytes after its end"):
        decode_content_encoding(body, "deflate", max_bytes=10**6)


def test_body_over_limit__too_large_before_decoding() -> None:
    with pytest.raises(BodyTooLarge, match="the body is 11 bytes, more than the limit of 10"):
        decode_loki_push(b"x" * 11, content_type="application/json", max_bytes=10)
