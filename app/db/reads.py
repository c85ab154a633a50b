"""Reads that wait neither for the GIL at every row nor for SQLite's writers.

Python's sqlite3 releases the GIL around every step of a statement, one step a row, and a
thread that gave up the GIL waits for it up to the interpreter's switch interval while
another thread of the process computes.  A select of 200 rows beside a busy thread took
0.6 s at Python's 5 ms (a game server's client), 32 ms at the 0.5 ms gamesched's own
processes set, against 3 ms idle (docs/measurements.md).  `rows` reads the whole result
as one JSON array on SQLite, in a single step; PostgreSQL's driver reads a result in one
call anyway.  `reading` is a session whose SQLite transaction takes no write lock.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVarTuple

from sqlalchemy import (
    ColumnElement,
    Float,
    Integer,
    LargeBinary,
    Select,
    String,
    case,
    func,
    select,
)
from sqlalchemy.orm import Session

from app.db import READ_ONLY

# How each column type comes out of SQLite's JSON (blobs travel as hex).
_FROM_JSON: dict[type, Any] = {Integer: int, Float: float, String: str, LargeBinary: bytes.fromhex}


Ts = TypeVarTuple("Ts")


@contextmanager
def reading(factory: Callable[[], Session]) -> Iterator[Session]:
    """A session that only reads.  On SQLite its transaction is deferred (every other one
    begins IMMEDIATE, taking the write lock at once), so it reads a snapshot of the
    database without waiting for the writers of other processes; a write in it may fail
    with "database is locked"."""
    with factory() as db:
        db.connection(execution_options={READ_ONLY: True})
        yield db


def rows(db: Session, stmt: Select[*Ts]) -> list[tuple[*Ts]]:
    """The rows of `stmt`, as tuples, in no particular order.  On SQLite its columns must
    be integers, floats, strings or blobs (TypeError names the column otherwise)."""
    if db.get_bind().dialect.name != "sqlite":
        result: Any = db.execute(stmt)  # rows as tuples: their types are stmt's
        return [tuple(row) for row in result]
    inner = stmt.subquery()
    decoders = [_decoder(column.name, column.type) for column in inner.c]
    packed = db.scalar(select(func.json_group_array(func.json_array(
        *(_as_json(column) for column in inner.c)))).select_from(inner))
    return [tuple(None if value is None else decode(value)  # type: ignore[misc]
                  for decode, value in zip(decoders, row, strict=True))
            for row in json.loads(packed or "[]")]


def _decoder(name: str, kind: Any) -> Any:
    for base, decode in _FROM_JSON.items():
        if isinstance(kind, base):
            return decode
    raise TypeError(f"column {name!r}: {kind!r} cannot be read in one step")


def _as_json(column: ColumnElement[Any]) -> ColumnElement[Any]:
    if isinstance(column.type, LargeBinary):  # hex(NULL) is '': keep NULL apart from b''
        return case((column.is_(None), None), else_=func.hex(column))
    return column
