"""Background dilation: the level the controller sets from late player batches, and the
pause a background task takes at that level."""

from __future__ import annotations

import pytest

from app.control.controller import Load, decide
from app.control.dilation import (
    BACKGROUND_FLOOR,
    MAX_PAUSE_S,
    SLOW_ALLOWED,
    next_level,
    note_latency,
    pause_after,
    slow_total,
)
from app.players.hotstore import MemoryHotStore
from app.protocol import keys


def test_late_batches_halve_the_level_down_to_the_floor() -> None:
    assert next_level(1.0, SLOW_ALLOWED + 1) == 0.5
    assert next_level(0.08, 50) == BACKGROUND_FLOOR


def test_a_tick_without_late_batches_lets_background_recover_up_to_full_speed() -> None:
    assert next_level(0.4, SLOW_ALLOWED) == 0.5
    assert next_level(0.9, 0) == 1.0


def test_pause_leaves_background_about_its_level_of_the_time() -> None:
    assert pause_after(0.2, 1.0) == 0.0
    assert pause_after(0.1, 0.25) == pytest.approx(0.3)
    assert pause_after(0.01, 0.0) == pytest.approx(0.01 * (1 / BACKGROUND_FLOOR - 1))
    assert pause_after(5.0, 0.5) == MAX_PAUSE_S


def test_only_batches_over_the_target_are_counted() -> None:
    hot = MemoryHotStore()
    note_latency(hot, 0.019, 0.020)
    assert slow_total(hot) == 0
    note_latency(hot, 0.021, 0.020)
    note_latency(hot, 0.5, 0.020)
    assert slow_total(hot) == 2
    note_latency(hot, 0.049, 0.020, 0.050)  # over the target, not past the late bar
    note_latency(hot, 0.051, 0.020, 0.050)
    assert slow_total(hot) == 4 and slow_total(hot, keys.CONTROL_PLAYER_LATE) == 1


def test_the_controller_slows_background_while_players_run_late() -> None:
    first = decide(Load(depths={}, cpu=0.5, slow_total=40), cpu_cap=0.8)
    assert first.background_level == 1.0  # nothing to compare the count with yet
    late = decide(Load(depths={}, cpu=0.5, slow_total=45), cpu_cap=0.8, previous=first)
    assert late.background_level == 0.5 and late.slow_total == 45
    calm = decide(Load(depths={}, cpu=0.5, slow_total=45), cpu_cap=0.8, previous=late)
    assert calm.background_level == 0.625


def test_a_restarted_count_is_read_from_zero() -> None:
    before = decide(Load(depths={}, cpu=0.5, slow_total=900), cpu_cap=0.8)
    after = decide(Load(depths={}, cpu=0.5, slow_total=1), cpu_cap=0.8, previous=before)
    assert after.background_level == 1.0  # one late batch since the restart
    again = decide(Load(depths={}, cpu=0.5, slow_total=3), cpu_cap=0.8, previous=before)
    assert again.background_level == 0.5
