"""The AI loop's plain check of a decision agrees with the request model on any input:
it accepts only what `AiDecision` accepts, with the same arguments, and leaves everything
else to the model, which names the field."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from app.client.requests import AiDecision, _plain_decision, check_decision
from app.errors import InvalidRequest
from app.validation import parse

WORLD = 100.0

coordinate = st.one_of(
    st.floats(min_value=-10.0, max_value=WORLD + 10.0),
    st.integers(min_value=-5, max_value=int(WORLD) + 5),
    st.sampled_from([math.nan, math.inf, -math.inf, True, False, None, "1.0", 0.0, WORLD]),
)
point = st.one_of(
    st.tuples(coordinate, coordinate),
    st.lists(coordinate, min_size=2, max_size=2),  # the model wants tuples
    st.tuples(coordinate), st.tuples(coordinate, coordinate, coordinate),
    st.just(None), st.just("1,2"),
)
npc_id = st.one_of(
    st.from_regex(r"[A-Za-z0-9_.:\-]{1,66}", fullmatch=True),
    st.text(max_size=70), st.sampled_from(["a\n", "a" * 64, "a" * 65, "", 7, None, b"n1"]),
)
players = st.one_of(
    st.lists(point, max_size=4), st.tuples(point), st.just(None), st.just([]),
    st.just(()), st.lists(st.just((1.0, 1.0)), min_size=255, max_size=258),
)


def by_model(npc: Any, position: Any, seen: Any) -> list[Any] | None:
    """What the model alone makes of a decision: its arguments, or None when refused."""
    try:
        req = parse(AiDecision, {"npc_id": npc, "position": position, "players": seen or []})
    except InvalidRequest:
        return None
    inside = [req.position, *req.players]
    if not all(0.0 <= x <= WORLD and 0.0 <= y <= WORLD for x, y in inside):
        return None
    return [req.npc_id, list(req.position), [list(p) for p in req.players]]


@settings(max_examples=400)
@given(npc_id, point, players)
@example("n" * 65, (1.0, 1.0), [])
@example("n1", (1.0, 1.0), [(1.0, 1.0), (2.0, True)])
@example("n1", (1.0, 1.0), [(1.0, 1.0), (2.0, "3")])
@example("n1", (1.0, 1.0), [(math.nan, 1.0)])
@example("n1", (1, 1.0), [(1.0, WORLD + 1)])
def test_the_plain_check_accepts_only_what_the_model_accepts(npc: Any, position: Any,
                                                             seen: Any) -> None:
    plain = _plain_decision(npc, position, seen, WORLD)
    model = by_model(npc, position, seen)
    if plain is not None:
        assert plain == model
        assert [type(v) for v in plain[1]] == [type(v) for v in model[1]]  # ints stay ints
    try:
        checked = check_decision(npc, position, seen, WORLD)
    except InvalidRequest:
        assert model is None
    else:
        assert checked == model


def test_the_common_case_takes_the_plain_check() -> None:
    assert _plain_decision("npc-1", (1.5, 2), [(3.0, 4.0)], WORLD) == [
        "npc-1", [1.5, 2], [[3.0, 4.0]]]
