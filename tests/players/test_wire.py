"""Batches joined on the wire: the entries of several batches in one, nothing unpacked."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.players import wire

_entries = st.lists(
    st.builds(lambda s, seq, x: wire.entry(s, seq, {"x": x}), st.text(min_size=1, max_size=8),
              st.integers(1, 2**40), st.integers(-(2**63), 2**64 - 1)),
    max_size=70)  # past a fixarray's 15 entries; the 32-bit header is tested below


@given(st.lists(_entries, min_size=1, max_size=5))
def test_a_joined_batch_holds_every_entry_of_its_parts_in_order(
        parts: list[list[wire.Entry]]) -> None:
    joined = wire.join_batches([wire.pack_batch(p) for p in parts])
    expected = wire.unpack_batch(wire.pack_batch([e for p in parts for e in p]))
    assert wire.unpack_batch(joined) == expected
    assert wire.batch_size(joined) == sum(len(p) for p in parts)


def test_batches_past_a_16_bit_count_join_with_a_32_bit_header() -> None:
    big = wire.pack_batch([wire.entry("s", 1, {})] * 40_000)
    joined = wire.join_batches([big, big])
    assert joined[0] == 0xDD
    assert wire.batch_size(joined) == 80_000
    assert len(wire.unpack_batch(joined)) == 80_000


@pytest.mark.parametrize("blob", [b"", b"\x81\xa1x\x01", b"\xdc\x00", b"\xa3abc"])
def test_a_blob_that_is_not_an_array_of_entries_is_refused(blob: bytes) -> None:
    good = wire.pack_batch([wire.entry("s", 1, {})])
    with pytest.raises(ValueError, match="not a batch in wire form"):
        wire.join_batches([good, blob])
