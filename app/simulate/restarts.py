"""What a ``restart-fleet`` fault kept: the run's open sessions, where each stood just before
every worker and both Redis servers were killed, and where they stand at the end of the
load.

At the kill, once the workers are dead and before the Redis servers are, each open
session's applied seq (hot state) and durable seq (what SQL holds: its snapshot, or the
state log the player workers write) are read.  The durable
seq is what the fleet acknowledged as surviving anything: a session is restored when its
hot state at the end of the load (read as it is, nothing repaired by the reading) holds at
least that seq, and every acknowledged seq it lacks is a lost update.  The updates between
the durable and the applied seq at the kill were applied but not yet in SQL: they are the
bounded lag's price, reported apart (a game server sends them again from `last_applied`).
A session the fleet has not yet brought back when the load ends (its instance not
answering yet, or the state log's replay not there yet) counts as not restored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.instances.registry import Registry
from app.players.durable import last_durable
from app.players.hotstore import HotStore
from app.players.models import GameSession
from app.players.sessions import NetworkTotals, network_totals, reset_network_totals
from app.protocol.vocab import SessionStatus

Section = dict[str, object]
NOT_RESTORED_SHOWN = 5  # sessions not restored, shown with their seqs


@dataclass
class AtKill:
    """The open sessions just before the kill: applied and durable seq of each; and what
    the workers had counted until then (the counters die with the Redis servers)."""

    applied: dict[str, int] = field(default_factory=dict)
    durable: dict[str, int] = field(default_factory=dict)
    network: NetworkTotals = field(default_factory=lambda: NetworkTotals(0, 0, 0, 0))


def open_sessions(factory: sessionmaker[Session], prefix: str) -> list[str]:
    """The open sessions whose ids start with `prefix` (one run's)."""
    with factory() as db:
        return list(db.scalars(select(GameSession.id).where(
            GameSession.id.startswith(prefix, autoescape=True),
            GameSession.status == SessionStatus.OPEN)))


def applied_seqs(stores: Sequence[HotStore], ids: Sequence[str]) -> dict[str, int]:
    """Each of `ids` with hot state: its applied seq, the highest among `stores` (a session
    lives in its instance's store; a store it moved away from may keep an older copy)."""
    seqs: dict[str, int] = {}
    for hot in stores:
        for session_id, seq in zip(ids, hot.states.seqs(list(ids)), strict=True):
            if seq is not None and seq > seqs.get(session_id, -1):
                seqs[session_id] = seq
    return seqs


def at_kill(stores: Sequence[HotStore], factory: sessionmaker[Session],
            prefix: str) -> AtKill:
    """Read where the run's open sessions stand, in hot state (every store of `stores`)
    and in SQL, once the workers are killed and before the Redis servers are: nothing
    changes either in between, so the updates applied and not yet durable are counted
    exactly.  The workers' network counters are taken out of the stores (read, then
    zeroed): the run adds them once to those counted after the restart, whether a store
    comes back empty or not."""
    ids = open_sessions(factory, prefix)
    network = network_totals(*stores)
    reset_network_totals(*stores)
    return AtKill(applied_seqs(stores, ids), last_durable(factory, ids), network)


def restart_section(kept: AtKill | None, stores: Sequence[HotStore],
                    registry: Registry | None = None) -> Section:
    """``sessions``: of the sessions open at the restart, the share restored (hot state
    back at least at its durable seq), the acknowledged updates lost, the updates applied
    but not yet durable at the kill, the first sessions not restored with their seqs, and
    (with instances) the share placed again."""
    if kept is None or not kept.durable:
        return {}
    durable = kept.durable
    ids = sorted(durable)
    now = applied_seqs(stores, ids)
    section: Section = {
        "open_at_restart": len(ids),
        "restored_ratio": round(sum(now.get(s, -1) >= durable[s] for s in ids) / len(ids), 6),
        "lost_updates": sum(max(0, durable[s] - now.get(s, 0)) for s in ids),
        "unsaved_updates": sum(max(0, seq - durable.get(s, 0))
                               for s, seq in kept.applied.items()),
        "not_restored": [{"session": s, "durable_seq": durable[s],
                          "applied_seq_at_kill": kept.applied.get(s),
                          "seq_now": now.get(s)}
                         for s in ids if now.get(s, -1) < durable[s]][:NOT_RESTORED_SHOWN],
    }
    if registry is not None:
        owners = registry.owners(ids)
        section["placed_ratio"] = round(sum(o is not None for o in owners) / len(ids), 6)
    return section
