"""The usual Loki push read a column at a time (``PlainEntries``): the same streams, entries
and errors as the entry-by-entry reader, and the same validation and store rows."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.logs.storage.sql import _copy_text, _plain_copy_text
from apps.logs.wire import DecodeError, Limits, PushedEntry, PushedStream, validate_push
from apps.logs.wire.loki import _full_protobuf, decode_loki_protobuf
from apps.logs.wire.types import PlainEntries
from tests.unit.logs.test_wire_loki import (
    TS,
    hand_entry,
    hand_push,
    length_delimited,
    varint_field,
)

NOW = TS + 10**9


def decoded_or_error(read, raw: bytes) -> object:
    try:
        return read(raw)
    except DecodeError as error:
        return ("error", error.location, error.reason)


# Entries: a time (seconds, nanos; 0 is a missing-looking time), a line (some not UTF-8,
# some with tabs, backslashes or a surrogate spelled in UTF-8), maybe metadata.
entries = st.tuples(
    st.sampled_from([0, 1, TS // 10**9, TS // 10**9 + 1, 2**63 // 10**9 + 1]),
    st.sampled_from([0, 5, 999_999_999, 10**9]),
    st.sampled_from(
        [b"a line", b"", "h\u00e9llo".encode(), b"caf\xe9", b"tab\tand \\", b"\xed\xa0\x80"]
    ),
    st.sampled_from([[], [(b"level", b"error")], [(b"trace_id", b"0" * 32)]]),
)
streams = st.tuples(
    st.sampled_from([b'{app="api", level="warn"}', b'{app="web"}', b"{app=x}", b'{a="b"}']),
    st.lists(entries, max_size=4),
    st.sampled_from([0, 7]),
)


def canonical_entry(
    seconds: int, nanos: int, line: bytes, metadata: list[tuple[bytes, bytes]]
) -> bytes:
    """An entry as protobuf writers write it: fields holding their default left out."""
    timestamp = (varint_field(1, seconds) if seconds else b"") + (
        varint_field(2, nanos) if nanos else b""
    )
    pairs = b"".join(
        length_delimited(3, length_delimited(1, name) + length_delimited(2, value))
        for name, value in metadata
    )
    return (
        (length_delimited(1, timestamp) if seconds or nanos else b"")
        + (length_delimited(2, line) if line else b"")
        + pairs
    )


@settings(max_examples=400, deadline=None)
@given(st.lists(streams, max_size=4), st.booleans(), st.booleans())
def test_protobuf__any_push__columns_read_as_entry_by_entry(
    pushed, unknown: bool, canonical: bool
) -> None:
    """Written as protobuf writers do, or with default values spelled out."""
    write = canonical_entry if canonical else hand_entry
    raw = hand_push(
        [
            (labels, [write(s, n, line, meta) for s, n, line, meta in items], stream_hash)
            for labels, items, stream_hash in pushed
        ]
    )
    if unknown:
        raw += varint_field(15, 3)
    assert decoded_or_error(decode_loki_protobuf, raw) == decoded_or_error(_full_protobuf, raw)


def test_protobuf__usual_push__plain_entries_with_the_stream_level() -> None:
    raw = hand_push(
        [
            (b'{app="api", level="WARNING"}', [canonical_entry(1, 5, b"x", [])], 0),
            (b'{app="web"}', [], 0),
        ]
    )
    warn, web = decode_loki_protobuf(raw)
    assert isinstance(warn.entries, PlainEntries)
    assert warn.entries == (PushedEntry(10**9 + 5, "x", (), "warn"),)
    assert isinstance(web.entries, PlainEntries)
    assert web.entries == ()


@pytest.mark.parametrize(
    ("entry", "location"),
    [
        (canonical_entry(1, 0, b"x", [(b"k", b"v")]), None),  # metadata: read entry by entry
        (canonical_entry(1, 0, b"x", []) + length_delimited(3, b""), None),  # an empty pair
        (length_delimited(2, b"no time"), "streams[0].entries[1].timestamp"),
        (canonical_entry(1, 0, b"\xed\xa0\x80", []), "streams[0].entries[1].line"),  # surrogate
    ],
)
def test_protobuf__entry_not_plain__full_reader_decides(entry: bytes, location: str | None) -> None:
    raw = hand_push([(b'{a="b"}', [canonical_entry(1, 0, b"ok", []), entry], 0)])
    if location is None:
        [stream] = decode_loki_protobuf(raw)
        assert not isinstance(stream.entries, PlainEntries)
        assert stream.entries == tuple(_full_protobuf(raw)[0].entries)
        assert stream.entries[1].metadata
    else:
        with pytest.raises(DecodeError) as caught:
            decode_loki_protobuf(raw)
        assert caught.value.location == location


def test_plain_entries__a_sequence_equal_to_its_tuple() -> None:
    plain = PlainEntries([1, 2, 3], ["a", "b", "c"], "info")
    as_tuple = tuple(PushedEntry(t, line, (), "info") for t, line in [(1, "a"), (2, "b"), (3, "c")])
    assert plain == as_tuple
    assert as_tuple == plain
    assert list(plain) == list(as_tuple)
    assert (plain[1], plain[-1], plain[1:]) == (as_tuple[1], as_tuple[-1], as_tuple[1:])
    assert len(plain) == 3
    assert plain != as_tuple[:2]
    assert hash(plain) == hash(as_tuple)
    with pytest.raises(ValueError, match="2 times for 1 lines"):
        PlainEntries([1, 2], ["a"])


plain_streams = st.lists(
    st.tuples(
        st.sampled_from([(("app", "api"),), (("app", "web"),), ()]),
        st.lists(
            st.tuples(
                st.sampled_from([NOW - 8 * 86_400 * 10**9, NOW - 1, NOW, NOW + 10**12]),
                st.sampled_from(["x", "y", "\u00e9" * 3, "z" * 20]),
            ),
            max_size=5,
        ),
        st.sampled_from(["", "info"]),
    ),
    max_size=4,
)


@settings(max_examples=300, deadline=None)
@given(plain_streams)
def test_validate__plain_entries__same_outcome_as_the_tuple(pushed) -> None:
    """Duplicates within a stream and across streams of one label set, old and future times,
    too long lines: columns and entries give the same validation."""
    limits = Limits(max_line_size=10)

    def push(as_columns: bool) -> list[PushedStream]:
        return [
            PushedStream(
                labels=labels,
                entries=(
                    PlainEntries([t for t, _ in items], [line for _, line in items], level)
                    if as_columns
                    else tuple(PushedEntry(t, line, (), level) for t, line in items)
                ),
                origin=f"streams[{i}]",
            )
            for i, (labels, items, level) in enumerate(pushed)
        ]

    columns = validate_push(push(True), limits=limits, now_ns=NOW)
    entries = validate_push(push(False), limits=limits, now_ns=NOW)
    assert columns == entries
    # Loki's rule, spelled out: per label set, each (time, line) within the limits once.
    expected: dict[tuple[tuple[str, str], ...], list[tuple[int, str]]] = {}
    for labels, items, _ in pushed:
        if labels:
            kept = expected.setdefault(labels, [])
            kept += [
                (t, line)
                for t, line in dict.fromkeys(items)
                if NOW - 7 * 86_400 * 10**9 <= t <= NOW + 600 * 10**9
                and len(line.encode()) <= 10
                and (t, line) not in kept
            ]
    accepted = [(s.labels, [(e.timestamp_ns, e.line) for e in s.entries]) for s in columns.accepted]
    assert accepted == [(labels, kept) for labels, kept in expected.items() if kept]
    # Accepted columns come vouched unique (they are: see above), for the store.
    assert all(s.entries.unique for s in columns.accepted if isinstance(s.entries, PlainEntries))


@pytest.mark.parametrize("level", ["", "warn"])
def test_copy_text__plain_entries__same_rows_as_entries(level: str) -> None:
    times = [TS + i for i in range(1, 4)]
    lines = ["one", "two \u00e9", "three"]
    plain = _plain_copy_text(3, 9, PlainEntries(times, lines, level))
    assert plain is not None
    text, size, minute = plain
    rows = [(9, t, line, "", level, "", "") for t, line in zip(times, lines, strict=True)]
    assert text == _copy_text(3, rows)
    assert (size, minute) == (sum(len(line.encode()) for line in lines), TS // (60 * 10**9))


def test_copy_text__control_characters__plain_unless_copy_escapes_them() -> None:
    times = [TS + 1, TS + 2]
    colored = PlainEntries(times, ["\x1b[31mred\x1b[0m", "bell \x07"], "error")
    plain = _plain_copy_text(3, 9, colored)
    assert plain is not None
    rows = [(9, t, line, "", "error", "", "") for t, line in zip(times, colored.lines, strict=True)]
    assert plain[0] == _copy_text(3, rows)
    for special in ("a\tb", "a\nb", "a\rb", "a\\b", "a\x00b"):
        assert _plain_copy_text(3, 9, PlainEntries(times, ["ok", special])) is None


def test_protobuf__labels_read_again__same_streams_and_errors() -> None:
    good = hand_push([(b'{app="api", level="error"}', [canonical_entry(1, 0, b"x", [])], 0)])
    bad = hand_push([(b'{app="api", level="error"', [canonical_entry(1, 0, b"x", [])], 0)])
    first = decode_loki_protobuf(good)
    assert decode_loki_protobuf(good) == first == _full_protobuf(good)
    assert first[0].entries[0].severity == "error"
    for _ in range(2):
        with pytest.raises(DecodeError) as caught:
            decode_loki_protobuf(bad)
        assert caught.value.location == "streams[0].labels"


def test_fingerprint__remembered_and_forgotten__same_value(monkeypatch) -> None:
    import hashlib

    from apps.logs.wire import types

    monkeypatch.setattr(types, "FINGERPRINTS_KEPT", 2)
    monkeypatch.setattr(types, "_fingerprints", {})
    sets = [(("app", f"a{i}"),) for i in range(5)]
    for labels in sets + sets:
        text = '{app="' + labels[0][1] + '"}'
        assert types.stream_fingerprint(labels) == hashlib.sha256(text.encode()).hexdigest()
    assert len(types._fingerprints) <= 2
