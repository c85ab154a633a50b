"""Task and header names: the wire contract between game servers and workers.

The client sends by name, so a game server never imports worker code; each worker module
registers its tasks under these names, and `app.protocol.queues.TASK_QUEUES` routes them.
"""

from __future__ import annotations

UPDATE_TASK = "gamesched.player.apply_updates"  # a coalesced batch of state updates
SESSION_TASK = "gamesched.player.session_op"  # open, update or close a session
SESSION_MOVES_TASK = "gamesched.player.session_moves"  # sessions' new regions, coalesced
ARRIVE_TASK = "gamesched.player.arrive"  # take moved sessions' state into an instance's store
VOID_TASK = "gamesched.player.void"  # freeze out-of-date copies in an instance's store
# One state update applied in Python: the textbook baseline's (`workers.textbook`).
STATE_TASK = "gamesched.textbook.apply_state"
PHYSICS_REGION_TASK = "gamesched.physics.step_region"  # one region, one frame
PHYSICS_FRAME_TASK = "gamesched.physics.step_frame"  # many regions, one frame
PHYSICS_BODIES_TASK = "gamesched.physics.change_bodies"  # spawn or remove a region's bodies
AI_TASK = "gamesched.ai.decide"  # one NPC decision
AI_BATCH_TASK = "gamesched.ai.decide_batch"  # one AI tick's decisions
APPLY_TASK = "gamesched.transactions.apply"  # one intent: args [transaction_id]
APPLY_BATCH_TASK = "gamesched.transactions.apply_batch"  # args [[transaction_id, ...]]
SWEEP_TASK = "gamesched.transactions.sweep"  # beat-driven, beside the controller
SNAPSHOT_TASK = "gamesched.background.snapshot"
ANALYTICS_TASK = "gamesched.background.analytics"
TICK_TASK = "gamesched.control.tick"  # sent by beat every controller period

# Message headers the client sets and workers read.
HANDOFF_HEADER = "gs_handoff"  # when the game server handed the work over (epoch seconds)
SENT_HEADER = "gs_sent"  # when the client sent the message
CLAIM_HEADER = "gs_claim"  # set on a copy raised in priority: the first copy to start runs

# What beat sends every controller period, by schedule entry: the controller's tick and the
# ledger's sweep.
BEAT_TASKS = {"controller-tick": TICK_TASK, "transactions-sweep": SWEEP_TASK}
