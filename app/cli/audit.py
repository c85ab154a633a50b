"""``gamesched audit``: run the ledger's SQL checks and print what each one verified."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from app.cli.failures import require_schema
from app.db import make_engine, make_sessionmaker, transaction
from app.ledger.audit import AuditReport, run_audit
from app.ledger.models import LedgerEntry, LedgerTransaction, Player, Wallet
from app.settings import Settings, redact

SHOWN_PER_CHECK = 20
LEDGER_TABLES = tuple(model.__tablename__
                      for model in (Player, Wallet, LedgerTransaction, LedgerEntry))


def show(console: Console, settings: Settings) -> bool:
    """Audit the ledger at the configured database and print the result; True when clean.
    Raises ServiceUnavailable when the database does not answer or lacks the ledger."""
    require_schema(settings.database_url, LEDGER_TABLES)
    engine = make_engine(settings.database_url)
    try:
        with transaction(make_sessionmaker(engine)) as db:
            report = run_audit(db)
    finally:
        engine.dispose()
    print_report(console, report, redact(settings.database_url))
    return report.ok


def print_report(console: Console, report: AuditReport, where: str) -> None:
    """A table of checks (ok or the number of violations), then the first violations."""
    counts = ", ".join(f"{name}={n}" for name, n in sorted(report.counts.items()))
    console.print(f"ledger at {where}: {counts}")
    table = Table(title="ledger audit")
    table.add_column("check")
    table.add_column("verifies")
    table.add_column("result", justify="right")
    for result in report.results:
        found = len(result.violations)
        table.add_row(result.check.name, result.check.proves,
                      "[green]ok[/]" if not found else f"[red]{found} violation(s)[/]")
    console.print(table)
    for result in report.results:
        for violation in result.violations[:SHOWN_PER_CHECK]:
            console.print(str(violation), style="red", markup=False, highlight=False)
    console.print("[green]ledger holds[/]" if report.ok else "[red]ledger audit failed[/]")
