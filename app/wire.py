"""The wire form of a batch of state updates: compact msgpack that the state store applies
as it arrives, without unpacking a single state value.

A batch is a msgpack array of entries, one per update, each a flat array::

    [session id, seq, field name, packed value, field name, packed value, ...]

Each value is packed on its own (msgpack, ``use_bin_type=True``) by the client that
accepted it, and stays packed in hot state and in the deltas.  The batch itself is packed
with ``use_bin_type=False`` so that every string, packed values included, is a msgpack raw
string, which the Lua interpreter inside Redis reads as bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgpack

Entry = list[Any]


def pack_value(value: Any) -> bytes:
    """One state value as it is stored and sent in deltas."""
    return bytes(msgpack.packb(value, use_bin_type=True))


def entry(session_id: str, seq: int, fields: Mapping[str, Any]) -> Entry:
    """One update's entry: its values packed one by one."""
    out: Entry = [session_id, seq]
    for name, value in fields.items():
        out += (name, pack_value(value))
    return out


def pack_batch(entries: Iterable[Entry]) -> bytes:
    """A batch on the wire."""
    return bytes(msgpack.packb(list(entries), use_bin_type=False))


def unpack_batch(blob: bytes) -> list[Any]:
    """The entries of a batch, every string as bytes (as the Redis script sees them)."""
    try:
        entries = msgpack.unpackb(blob, raw=True)
    except (ValueError, msgpack.UnpackException) as exc:
        raise ValueError(f"not a batch in wire form: {exc!r}") from None
    if not isinstance(entries, list):
        raise ValueError("not a batch in wire form: expected an array of update entries")
    return entries
