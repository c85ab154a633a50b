"""State deltas: only the fields that changed, positions quantised, packed with msgpack.

A session's hot state is a flat dict of JSON values.  Positions are stored quantised
(integers of 1/POSITION_SCALE world units) so that a delta applied to the old state gives
the new state exactly.
"""

from __future__ import annotations

import json
from typing import Any

import msgpack

from app.players.wire import packer

POSITION_SCALE = 100  # centi-units: 0.01 world units
POSITION_FIELD = "pos"
_REMOVED = "-"


def quantise(position: tuple[float, float]) -> list[int]:
    """A world position as integers of 1/POSITION_SCALE units."""
    return [round(position[0] * POSITION_SCALE), round(position[1] * POSITION_SCALE)]


def diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The fields of `new` that differ from `old`, and the names `new` dropped."""
    changed = {k: v for k, v in new.items() if k not in old or old[k] != v}
    removed = [k for k in old if k not in new]
    if removed:
        changed[_REMOVED] = removed
    return changed


def encode(seq: int, changes: dict[str, Any]) -> bytes:
    """A delta on the wire: ``[seq, {field: value, "-": [removed...]}]`` in msgpack."""
    return bytes(msgpack.packb([seq, changes], use_bin_type=True))


def encode_packed(seq: int, changes: dict[str, bytes]) -> bytes:
    """`encode` of changes whose values are msgpack-packed already (as the state store keeps
    them): the same bytes, without unpacking and packing each value again."""
    pack = packer().pack
    parts = [b"\x92", pack(seq), map_header(len(changes))]
    for name, value in changes.items():
        parts += [pack(name), value]
    return b"".join(parts)


def message(deltas: dict[str, bytes]) -> bytes:
    """One batch's deltas on the wire: msgpack ``{session: [seq, changes]}``, written around
    the encoded deltas."""
    pack = packer().pack
    parts = [map_header(len(deltas))]
    for session_id, raw in deltas.items():
        parts += [pack(session_id), raw]
    return b"".join(parts)


def split(raw_message: bytes) -> dict[str, bytes]:
    """The encoded delta of each session in a batch's message (the inverse of `message`)."""
    return {session: encode(seq, changes)
            for session, (seq, changes) in msgpack.unpackb(raw_message, raw=False).items()}


def map_header(size: int) -> bytes:
    """The msgpack header of a map of `size` entries."""
    if size < 16:
        return bytes([0x80 | size])
    if size < 1 << 16:
        return b"\xde" + size.to_bytes(2, "big")
    return b"\xdf" + size.to_bytes(4, "big")


def decode(raw: bytes) -> tuple[int, dict[str, Any]]:
    """The sequence number and changes of an encoded delta."""
    seq, changes = msgpack.unpackb(raw, raw=False)
    return int(seq), dict(changes)


def apply(old: dict[str, Any], raw: bytes) -> dict[str, Any]:
    """`old` with an encoded delta applied; equals the state the delta was made from."""
    _, changes = decode(raw)
    removed = set(changes.pop(_REMOVED, []))
    merged = {k: v for k, v in old.items() if k not in removed}
    merged.update(changes)
    return merged


def full_state_msgpack_size(seq: int, state: dict[str, Any]) -> int:
    """Bytes of the same state sent whole in the deltas' own encoding: the delta of an
    update that changed every field (like for like with `encode`)."""
    return len(encode(seq, state))


def full_state_size(seq: int, state: dict[str, Any]) -> int:
    """Bytes of the same state sent whole as JSON, with float positions (the comparison)."""
    shown = dict(state)
    if POSITION_FIELD in shown:
        shown[POSITION_FIELD] = [c / POSITION_SCALE for c in shown[POSITION_FIELD]]
    return len(json.dumps({"seq": seq, "state": shown}, separators=(",", ":")))
