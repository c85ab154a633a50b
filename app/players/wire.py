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

import threading
from collections.abc import Iterable, Mapping
from typing import Any

import msgpack

Entry = list[Any]
_packers = threading.local()


def packer(bin_type: bool = True) -> msgpack.Packer:
    """This thread's msgpack Packer (`use_bin_type=bin_type`), made once per thread.

    `msgpack.packb` makes a Packer, and its buffer, on every call: on the hot path, a
    state value at a time, that was a large share of the client's cost per update
    (docs/measurements.md)."""
    name = "bin" if bin_type else "raw"
    found: msgpack.Packer | None = getattr(_packers, name, None)
    if found is None:
        found = msgpack.Packer(use_bin_type=bin_type)
        setattr(_packers, name, found)
    return found


def pack_value(value: Any) -> bytes:
    """One state value as it is stored and sent in deltas."""
    return bytes(packer().pack(value))


def entry(session_id: str, seq: int, fields: Mapping[str, Any]) -> Entry:
    """One update's entry: its values packed one by one."""
    pack = packer().pack
    out: Entry = [session_id, seq]
    for name, value in fields.items():
        out += (name, pack(value))
    return out


def pack_map(packed: Mapping[str, bytes]) -> bytes:
    """The msgpack map of values already packed one by one, assembled as they are: what
    ``msgpack.packb`` of the unpacked dict gives (a session's snapshot)."""
    pack = packer()
    parts = [bytes(pack.pack_map_header(len(packed)))]
    for name, value in packed.items():
        parts += (bytes(pack.pack(name)), value)
    return b"".join(parts)


def pack_batch(entries: Iterable[Entry]) -> bytes:
    """A batch on the wire."""
    return bytes(packer(bin_type=False).pack(list(entries)))


def unpack_batch(blob: bytes) -> list[Any]:
    """The entries of a batch, every string as bytes (as the Redis script sees them)."""
    try:
        entries = msgpack.unpackb(blob, raw=True)
    except (ValueError, msgpack.UnpackException) as exc:
        raise ValueError(f"not a batch in wire form: {exc!r}") from None
    if not isinstance(entries, list):
        raise ValueError("not a batch in wire form: expected an array of update entries")
    return entries


def batch_size(blob: bytes) -> int:
    """How many entries the batch `blob` holds, read from its header alone (msgpack's
    ``read_array_header``).  Raises ValueError for a blob that is not a msgpack array."""
    unpacker = msgpack.Unpacker(raw=True)
    unpacker.feed(blob)
    try:
        return int(unpacker.read_array_header())
    except (ValueError, msgpack.OutOfData):
        raise ValueError("not a batch in wire form: expected an array of update entries") from None
