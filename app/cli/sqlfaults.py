"""``python -m app.cli.sqlfaults --sql-error-rate R [--seed N] -- COMMAND...``: run a
``gamesched`` command with a share `R` of the SQL statements of every engine in the process
(prefork children included) failing with an operational error (`app.simulate.sqlfaults`).
The simulator's ``db-errors`` fault and the fault tests start workers through it."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sqlalchemy import Engine

from app.cli.main import main as gamesched
from app.simulate.sqlfaults import sql_faults


def main(argv: Sequence[str] | None = None) -> None:
    """Run a ``gamesched`` command with SQL faults injected into every engine."""
    parser = argparse.ArgumentParser(prog="python -m app.cli.sqlfaults", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sql-error-rate", type=float, required=True)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    sys.argv = ["gamesched", *command]
    with sql_faults(Engine, args.sql_error_rate, args.seed):
        gamesched()


if __name__ == "__main__":
    main()
