"""Holt's linear trend: it starts where the first observation is, follows a ramp with its
slope, settles on a flat load, and never asks to act on less than is seen."""

from __future__ import annotations

import pytest

from app.control.forecast import Holt
from app.errors import InvalidRequest


def fold_all(holt: Holt, trace: list[float]) -> tuple[float, float]:
    level: float | None = None
    trend = 0.0
    for seen in trace:
        level, trend = holt.fold(seen, level, trend)
    assert level is not None
    return level, trend


def test_the_first_observation_starts_the_level_with_no_trend() -> None:
    assert Holt().fold(0.6, None, 0.0) == (0.6, 0.0)


def test_a_ramp_is_followed_and_forecast_with_its_slope() -> None:
    ramp = [0.30 + 0.05 * k for k in range(12)]  # 0.30 ... 0.85
    level, trend = fold_all(Holt(), ramp)
    assert trend == pytest.approx(0.05, abs=0.01)
    assert Holt.ahead(ramp[-1], level, trend, 2) == pytest.approx(0.95, abs=0.03)


def test_a_flat_load_settles_and_a_falling_one_is_acted_on_as_seen() -> None:
    level, trend = fold_all(Holt(), [0.6] * 20)
    assert (level, trend) == (pytest.approx(0.6), pytest.approx(0.0, abs=1e-9))
    level, trend = fold_all(Holt(), [0.9, 0.8, 0.7, 0.6, 0.5])
    assert trend < 0 and Holt.ahead(0.5, level, trend, 2) == 0.5  # not less than seen


def test_smoothing_factors_outside_zero_to_one_are_refused() -> None:
    with pytest.raises(InvalidRequest, match="alpha"):
        Holt(alpha=0.0)
    with pytest.raises(InvalidRequest, match="beta"):
        Holt(beta=1.5)
