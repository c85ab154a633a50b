"""Placement on paper: the figures of many sessions on many instances, a join and a leave."""

from __future__ import annotations

import pytest

from app.errors import InvalidRequest
from app.simulate.placing import paper_run


def test_a_paper_run_is_balanced_and_moves_about_one_instances_share() -> None:
    run = paper_run(instances=10, sessions=3_000, seed=2)
    assert run.max_over_mean <= 1.05 and run.join_max_over_mean <= 1.10
    assert 0.5 / 11 <= run.join_moved_ratio <= 1 / 11 + 1e-9  # the newcomer's share, at most
    assert 0.5 / 11 <= run.leave_moved_ratio <= 1.5 / 11  # what the leaver held
    assert run.leave_max_over_mean <= 1.10
    assert run.place_us > 0


@pytest.mark.parametrize(("instances", "sessions", "field"), [
    (0, 10, "instances"), (2, 0, "sessions")])
def test_a_bad_size_is_refused_naming_it(instances: int, sessions: int, field: str) -> None:
    with pytest.raises(InvalidRequest, match=field):
        paper_run(instances, sessions)
