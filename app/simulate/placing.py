"""Placement on paper: many sessions on many instances, one joining and one leaving, in
this process (`app.instances.placement`), for the figures of a fleet too large to run here:
how even the load is, how much of it moves, and what a placement costs."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from app.errors import InvalidRequest
from app.instances.placement import Placement, weight


@dataclass(frozen=True)
class PaperRun:
    """What placing `sessions` on `instances`, then a join and a leave, showed."""

    instances: int
    sessions: int
    max_over_mean: float  # after every session was placed
    place_us: float  # CPU per placement
    join_moved_ratio: float  # of the load, onto the instance that joined
    join_max_over_mean: float
    leave_moved_ratio: float  # of the load, off the instance that left
    leave_max_over_mean: float


def paper_run(instances: int, sessions: int, seed: int = 1) -> PaperRun:
    """Place `sessions` of drawn weights (1 to 8 players, 0 to 20 inputs a second) on
    `instances`, add one instance, then remove another."""
    if not 1 <= instances <= 10_000:
        raise InvalidRequest("instances", instances, "expected 1 to 10,000")
    if not 1 <= sessions <= 10_000_000:
        raise InvalidRequest("sessions", sessions, "expected 1 to 10,000,000")
    rng = random.Random(seed)
    placement = Placement()
    for n in range(instances):
        placement.join(f"instance-{n}")
    began = time.process_time()
    for k in range(sessions):
        placement.place(f"session-{k}", weight(rng.randint(1, 8), rng.uniform(0.0, 20.0)))
    place_us = (time.process_time() - began) / sessions * 1e6
    placed = placement.max_over_mean()
    total = sum(placement.weights.values())
    joined = placement.join("instance-new")
    join_ratio = sum(placement.weights[m.session] for m in joined) / total
    join_balance = placement.max_over_mean()
    left = placement.leave("instance-0")
    leave_ratio = sum(placement.weights[m.session] for m in left) / total
    return PaperRun(instances, sessions, round(placed, 4), round(place_us, 1),
                    round(join_ratio, 4), round(join_balance, 4), round(leave_ratio, 4),
                    round(placement.max_over_mean(), 4))
