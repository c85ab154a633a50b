"""A short-horizon forecast of the machine's load: Holt's linear trend (double exponential
smoothing), so the controller acts before a spike peaks rather than once it has.

Each tick folds one observation into a level and a trend; the forecast `h` ticks ahead is
``level + h * trend``.  A falling forecast never lowers what the controller acts on below
what it sees now (`Holt.ahead` is the larger of the two): prediction only makes it act
earlier, never later.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.errors import InvalidRequest


@dataclass(frozen=True)
class Holt:
    """Smoothing of the level (`alpha`) and of the trend (`beta`), both in (0, 1]."""

    alpha: float = 0.5
    beta: float = 0.3

    def __post_init__(self) -> None:
        for name in ("alpha", "beta"):
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise InvalidRequest(name, value, "expected a smoothing factor in (0, 1]")

    def fold(self, seen: float, level: float | None, trend: float) -> tuple[float, float]:
        """The level and trend after observing `seen` (the first observation starts the
        level there, with no trend)."""
        if level is None:
            return seen, 0.0
        new_level = self.alpha * seen + (1 - self.alpha) * (level + trend)
        return new_level, self.beta * (new_level - level) + (1 - self.beta) * trend

    @staticmethod
    def ahead(seen: float, level: float, trend: float, ticks: float) -> float:
        """What to act on: the forecast `ticks` ahead, or what is seen now if higher (what
        is seen, with no horizon: the reactive controller)."""
        return max(seen, level + ticks * trend) if ticks > 0 else seen
