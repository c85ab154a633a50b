"""NPC behaviour: what an NPC does next."""

from app.ai.behaviour import decide

__all__ = ["decide"]
