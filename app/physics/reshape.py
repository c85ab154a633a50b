"""A unit's spaces split and merged to follow the partition the director publishes.

When the owner map names a region's quarters instead of the region (the director split
it), the unit holding its space cuts it into one space per quarter, each body moved whole
to the quarter holding its centre; when it names a parent instead of its four quarters (a
merge), the quarters' bodies move into one space.  The new spaces go on counting steps
from the old ones.  A name a frame or a game server still uses after the change stands for
the regions that replaced it (`app.physics.world.Leaves.resolve`), so nothing is lost in
between: a body sent to a retired name goes into one of the regions that replaced it, and
crosses to the right one at its next step.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet

import pymunk

from app.physics.engine import adopt, new_space
from app.physics.handover import move_body
from app.physics.world import Leaves, World, in_world, resolve

Retired = dict[str, tuple[str, ...]]  # a name no longer in the map -> the regions replacing it


def reshape(spaces: dict[str, pymunk.Space], known: Leaves, world: World) -> Retired:
    """Split or merge `spaces` (region to space, changed in place) to the regions of
    `known`; returns the names retired, each with the regions now holding its bodies."""
    retired: Retired = {}
    if not known.names:
        return retired
    for region in [r for r in spaces if r not in known.names and in_world(r)]:
        targets = known.resolve(region)
        if targets == (region,):
            continue  # the map does not cover it: left as it is
        old = spaces.pop(region)
        for target in targets:
            space = spaces.get(target)
            if space is None:
                space = spaces[target] = new_space(target, world)
            space.gs_steps = max(space.gs_steps, old.gs_steps)  # type: ignore[attr-defined]
        _move_all(old, targets, spaces, world)
        retired[region] = targets
    return retired


def resolve_frame(names: AbstractSet[str], steps: Iterable[tuple[str, int, float]]
                  ) -> dict[str, tuple[int, float]]:
    """A frame's ``(name, bodies, dt_ms)`` as the regions `names`: a split name's bodies
    shared among its quarters, the names inside a merged region added up, each region
    advancing by the shortest time any of its names asked for (it is due since then)."""
    out: dict[str, tuple[int, float]] = {}
    for name, bodies, dt_ms in steps:
        targets = resolve(name, names)
        for target, share in zip(targets, divide(bodies, targets), strict=True):
            had, since = out.get(target, (0, dt_ms))
            out[target] = (had + share, min(since, dt_ms))
    return out


def divide(bodies: int, regions: Sequence[str]) -> list[int]:
    """`bodies` shared among `regions`, as evenly as counts go (the first take the rest)."""
    share, rest = divmod(bodies, len(regions))
    return [share + (k < rest) for k in range(len(regions))]


def _move_all(old: pymunk.Space, targets: tuple[str, ...], spaces: dict[str, pymunk.Space],
              world: World) -> None:
    """Move every body of `old` to the space of the target region holding its centre (the
    first target for one off all of them)."""
    places = Leaves(frozenset(targets), world)
    for body in list(old.bodies):
        if body.body_type != pymunk.Body.DYNAMIC:
            continue
        target = places.find(*body.position) or targets[0]
        move_body(body, old, spaces[target])
        adopt(spaces[target], body)
