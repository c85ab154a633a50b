"""``gamesched demo``: run the demo and print its table."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from app.cli.failures import require_database, require_redis
from app.settings import Settings, redact
from app.simulate.demo import counted, run_demo


def show(console: Console, settings: Settings, sessions: int, duration: float,
         instances: int = 2) -> bool:
    """Run the demo on `instances` server instances, print tasks and latency per queue;
    False if tasks went missing.  Raises ServiceUnavailable when a configured Redis or the
    database does not answer."""
    require_redis(settings)
    require_database(settings.database_url)
    broker = "embedded in-memory broker" if settings.embedded else redact(settings.broker_url)
    console.print(f"gamesched demo: {sessions} sessions for {duration:.0f}s on {broker}, "
                  f"database {redact(settings.database_url)}", markup=False)
    with console.status("running the demo workload..."):
        result = run_demo(settings, sessions=sessions, duration=duration, instances=instances)
    table = Table(title="tasks and latency per queue (hand-off to applied)")
    for column in ("queue", "tasks", "failed", "p50 ms", "p99 ms", "max ms"):
        table.add_column(column, justify="left" if column == "queue" else "right")
    for s in [*result.stats.values(), *result.player_parts]:
        table.add_row(s.queue, str(s.tasks), str(s.failed), f"{s.p50_ms:.1f}",
                      f"{s.p99_ms:.1f}", f"{s.max_ms:.1f}")
    console.print(table)
    if instances:
        console.print("sessions by server instance: " + ", ".join(
            f"{name} {count}" for name, count in result.placed.items()))
    applied = counted(result.executions)
    console.print(f"sent {result.sent} tasks, {applied} applied")
    return result.drained and all(s.failed == 0 for s in result.stats.values())
