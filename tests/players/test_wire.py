"""A batch's size read from its header alone, and blobs that are not batches refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.players import wire

_entries = st.lists(
    st.builds(lambda s, seq, x: wire.entry(s, seq, {"x": x}), st.text(min_size=1, max_size=8),
              st.integers(1, 2**40), st.integers(-(2**63), 2**64 - 1)),
    max_size=70)  # past a fixarray's 15 entries; the 32-bit header is tested below


@given(_entries)
def test_a_batch_says_how_many_entries_it_holds(entries: list[wire.Entry]) -> None:
    assert wire.batch_size(wire.pack_batch(entries)) == len(entries)


def test_a_batch_past_a_16_bit_count_is_read_from_its_32_bit_header() -> None:
    big = wire.pack_batch([wire.entry("s", 1, {})] * 70_000)
    assert big[0] == 0xDD
    assert wire.batch_size(big) == 70_000


@pytest.mark.parametrize("blob", [b"", b"\x81\xa1x\x01", b"\xdc\x00", b"\xa3abc"])
def test_a_blob_that_is_not_an_array_of_entries_is_refused(blob: bytes) -> None:
    with pytest.raises(ValueError, match="not a batch in wire form"):
        wire.batch_size(blob)
