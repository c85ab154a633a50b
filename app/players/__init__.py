"""The player path on the worker side: the sessions service, hot state and its stores (with
their Lua scripts), the wire form of state batches, deltas, snapshots and analytics."""
