"""`reads.rows` gives what a plain select gives, on SQLite (read in one step, as JSON) and
on PostgreSQL: integers, floats, strings, blobs and NULLs, an empty blob apart from NULL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import (
    Column,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    select,
)
from sqlalchemy.orm import Session, sessionmaker

from app.db import make_engine, make_sessionmaker, reads, transaction, utcnow

_META = MetaData()
_PROBE = Table("read_probe", _META, Column("id", Integer, primary_key=True),
               Column("name", String(32)), Column("score", Float), Column("blob", LargeBinary),
               Column("at", DateTime(timezone=True)))
_ROWS = [
    (1, "ada", 1.5, b"\x00\xffbytes"),
    (2, "bob", None, None),
    (3, "", -2.25, b""),
    (4, None, 0.0, bytes(range(256))),
]


@pytest.fixture(params=["sqlite", "postgresql"])
def factory(request: pytest.FixtureRequest, sqlite_url: str) -> Iterator[sessionmaker[Session]]:
    url = sqlite_url if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    engine = make_engine(url)
    _META.create_all(engine)
    factory = make_sessionmaker(engine)
    with transaction(factory) as db:
        db.execute(_PROBE.insert(), [dict(zip(("id", "name", "score", "blob"), row,
                                              strict=True), at=utcnow()) for row in _ROWS])
    yield factory
    _META.drop_all(engine)
    engine.dispose()


def _columns() -> tuple[Column[int], Column[str], Column[float], Column[bytes]]:
    c = _PROBE.c
    return c.id, c.name, c.score, c.blob


def test_rows_are_what_a_plain_select_reads(factory: sessionmaker[Session]) -> None:
    stmt = select(*_columns())
    with factory() as db:
        assert sorted(reads.rows(db, stmt)) == _ROWS
        assert sorted(reads.rows(db, stmt)) == sorted(tuple(r) for r in db.execute(stmt))


def test_a_filtered_select_and_an_empty_one(factory: sessionmaker[Session]) -> None:
    ident, name, _, blob = _columns()
    with factory() as db:
        assert sorted(reads.rows(db, select(ident, blob).where(ident.in_([2, 3])))) == [
            (2, None), (3, b"")]
        assert reads.rows(db, select(name).where(ident > 10)) == []


def test_a_column_sqlite_cannot_give_back_as_json_is_named(
        sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    _META.create_all(engine)
    with make_sessionmaker(engine)() as db, pytest.raises(TypeError, match="'at'"):
        reads.rows(db, select(_PROBE.c.id, _PROBE.c.at))
    engine.dispose()


def test_a_reading_session_reads_past_a_sqlite_writer_holding_the_lock(
        sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    _META.create_all(engine)
    factory = make_sessionmaker(engine)
    with transaction(factory) as writer:  # holds SQLite's write lock till the block ends
        writer.execute(_PROBE.insert(), [{"id": 9, "name": "uncommitted"}])
        writer.flush()
        with reads.reading(factory) as db:  # an IMMEDIATE transaction would wait 10 s here
            assert reads.rows(db, select(_PROBE.c.id)) == []
    with reads.reading(factory) as db:
        assert reads.rows(db, select(_PROBE.c.id)) == [(9,)]
    engine.dispose()
