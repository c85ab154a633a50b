"""Physics: the world's partition into regions, their owners among the physics units, and
stepping regions on pymunk."""

from app.physics.detail import DetailRates, due, step_rates
from app.physics.engine import StepResult, step_region, step_regions
from app.physics.handover import move_body, pack_space, put_body, take_body, unpack_space
from app.physics.owners import MemoryOwnerMap, OwnerMap, OwnerView, RedisOwnerMap
from app.physics.ownership import Assignment, assign, curve_order, max_over_mean, rebalance
from app.physics.partition import Bounds, Changes, Partition

__all__ = [
    "Assignment", "Bounds", "Changes", "DetailRates", "MemoryOwnerMap", "OwnerMap", "OwnerView",
    "Partition", "RedisOwnerMap", "StepResult", "assign",
    "curve_order", "due", "max_over_mean", "move_body", "pack_space", "put_body", "rebalance",
    "step_rates", "step_region", "step_regions", "take_body", "unpack_space",
]
