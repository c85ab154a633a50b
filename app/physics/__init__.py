"""Physics: the world's partition into regions, their owners among the physics units, and
stepping regions on pymunk.

The names below load on first use: pymunk and numpy are for the processes that step the
world, while every worker and game server imports parts of this package (docs/measurements.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from app import lazy

if TYPE_CHECKING:
    from app.physics.detail import DetailRates, due, step_rates
    from app.physics.engine import StepResult, new_space, step_space
    from app.physics.handover import move_body, pack_space, put_body, take_body, unpack_space
    from app.physics.owners import MemoryOwnerMap, OwnerMap, OwnerView, RedisOwnerMap
    from app.physics.ownership import Assignment, assign, curve_order, max_over_mean, rebalance
    from app.physics.partition import Bounds, Changes, Partition
    from app.physics.units import FrameWork, Links, Unit, UnitFrame, unit

__getattr__ = lazy.exports(__name__, lazy.by_module({
    "app.physics.detail": ("DetailRates", "due", "step_rates"),
    "app.physics.engine": ("StepResult", "new_space", "step_space"),
    "app.physics.handover": ("move_body", "pack_space", "put_body", "take_body",
                             "unpack_space"),
    "app.physics.owners": ("MemoryOwnerMap", "OwnerMap", "OwnerView", "RedisOwnerMap"),
    "app.physics.ownership": ("Assignment", "assign", "curve_order", "max_over_mean",
                              "rebalance"),
    "app.physics.partition": ("Bounds", "Changes", "Partition"),
    "app.physics.units": ("FrameWork", "Links", "Unit", "UnitFrame", "unit"),
}))

__all__ = [
    "Assignment", "Bounds", "Changes", "DetailRates", "FrameWork", "Links", "MemoryOwnerMap",
    "OwnerMap", "OwnerView", "Partition", "RedisOwnerMap", "StepResult", "Unit", "UnitFrame",
    "assign", "curve_order", "due", "max_over_mean", "move_body", "new_space", "pack_space",
    "put_body", "rebalance", "step_rates", "step_space", "take_body", "unit", "unpack_space",
]
