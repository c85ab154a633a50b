"""``gamesched simulate``: a seeded load simulator and its report.

scenarios (what to play) -> schedule and population (the seeded ticks) -> driver (hands
them to the client API in real time) -> runner (fleet, calibration, drain; the naive
baseline is the same run with Celery's defaults) -> sampler (CPU, memory, queue depths,
execution records) -> report, plot and command (table, JSON, PNG).
"""
