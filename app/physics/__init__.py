"""Physics: the world's partition into regions, and stepping regions on pymunk."""

from app.physics.engine import StepResult, step_region, step_regions
from app.physics.partition import Bounds, Changes, Partition

__all__ = ["Bounds", "Changes", "Partition", "StepResult", "step_region", "step_regions"]
