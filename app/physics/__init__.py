"""Physics: stepping regions of the world on pymunk."""

from app.physics.engine import StepResult, step_region, step_regions

__all__ = ["StepResult", "step_region", "step_regions"]
