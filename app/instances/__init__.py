"""Server instances: where each session runs (placement, the registry) and how an instance
says it is alive."""

from app.instances.heartbeat import Heartbeat
from app.instances.placement import Move, Placement, weight
from app.instances.registry import (
    InstanceState,
    MemoryRegistry,
    RedisRegistry,
    Registry,
    registry_for,
)

__all__ = ["Heartbeat", "InstanceState", "MemoryRegistry", "Move", "Placement",
           "RedisRegistry", "Registry", "registry_for", "weight"]
