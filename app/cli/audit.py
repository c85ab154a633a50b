"""``gamesched audit``: run the ledger's SQL checks and print what each one verified."""

from __future__ import annotations

import json
from typing import Any

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


def show(console: Console, settings: Settings, as_json: bool = False) -> bool:
    """Audit the ledger at the configured database and print the result (a table, or
    with `as_json` one JSON document, `report_document`); True when clean.  Raises
    ServiceUnavailable when the database does not answer or lacks the ledger."""
    require_schema(settings.database_url, LEDGER_TABLES)
    engine = make_engine(settings.database_url)
    try:
        with transaction(make_sessionmaker(engine)) as db:
            report = run_audit(db)
    finally:
        engine.dispose()
    where = redact(settings.database_url)
    if as_json:
        console.print_json(json.dumps(report_document(report, where), default=str))
    else:
        print_report(console, report, where)
    return report.ok


def report_document(report: AuditReport, where: str) -> dict[str, Any]:
    """The audit as data: the database, whether the ledger holds, its counts, and each
    check with what it verifies, its number of violations and the first of them."""
    return {
        "database": where, "ok": report.ok, "counts": report.counts,
        "checks": [{"name": r.check.name, "verifies": r.check.proves,
                    "violations": len(r.violations),
                    "rows": [v.row for v in r.violations[:SHOWN_PER_CHECK]]}
                   for r in report.results],
    }


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
