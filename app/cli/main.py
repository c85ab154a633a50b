"""The ``gamesched`` command: workers, the controller, the database, status and the demo."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from app.cli import failures
from app.errors import ConfigError, GameschedError, InvalidRequest
from app.protocol.vocab import RoleName
from app.settings import Settings, load_settings, redact

# Markdown: a docstring's line breaks join into one paragraph, wrapped to the terminal.
cli = typer.Typer(help="gamesched: a durable task scheduler for multiplayer game servers.",
                  rich_markup_mode="markdown",
                  no_args_is_help=True, add_completion=False)
db_cli = typer.Typer(help="Database schema (Alembic).", no_args_is_help=True,
                     rich_markup_mode="markdown")
cli.add_typer(db_cli, name="db")
physics_cli = typer.Typer(help="Physics scenarios.", no_args_is_help=True,
                          rich_markup_mode="markdown")
cli.add_typer(physics_cli, name="physics")
fleet_cli = typer.Typer(help="A whole fleet under one supervisor process.",
                        no_args_is_help=True, rich_markup_mode="markdown")
cli.add_typer(fleet_cli, name="fleet")
console = Console()


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        console.print(f"[red]configuration error:[/] {exc}")
        raise typer.Exit(2) from None


@cli.command()
def worker(
    *,
    role: Annotated[str, typer.Option(help="|".join(r for r in RoleName if r != RoleName.CONTROL))],
    concurrency: Annotated[int | None, typer.Option(min=1, help="Pool size.")] = None,
    metrics_port: Annotated[int | None, typer.Option(help="Serve Prometheus metrics.")] = None,
    hostname: Annotated[str | None, typer.Option(help="Celery node name.")] = None,
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
    unit: Annotated[int | None, typer.Option(
        help="Physics only: the unit this worker is (queue physics.<unit>); "
             "without it, one worker runs every unit.")] = None,
    instance: Annotated[str | None, typer.Option(
        help="Player and all only: the server instance this worker is; it serves the "
             "sessions placed on it (queue player.<instance>) and heartbeats to the "
             "instance registry.")] = None,
) -> None:
    """Start a Celery worker with the role's queues, pool and prefetch."""
    from app.fleet import worker as workercmd

    settings = _settings()
    try:
        argv = workercmd.worker_argv(settings, role, concurrency, hostname, loglevel, unit,
                                     instance)
    except InvalidRequest as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    failures.require_redis(settings)  # once: later outages are Celery's to ride out
    workercmd.lower_cpu_priority(settings, role)
    workercmd.run_worker(settings, argv, metrics_port, workercmd.memory_budget(settings, role),
                         role, instance)


@cli.command()
def controller(
    metrics_port: Annotated[int | None, typer.Option(help="Serve Prometheus metrics.")] = None,
    hostname: Annotated[str | None, typer.Option(help="Celery node name.")] = None,
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
    schedule: Annotated[str | None, typer.Option(
        help="Beat's schedule file (default: gamesched-beat-<instance> in the temp folder).",
    )] = None,
) -> None:
    """Start the controller: beat plus the worker that runs its tick and the ledger's
    sweeper (queue ``control``)."""
    from app.fleet import worker as workercmd

    settings = _settings()
    schedule = schedule or os.path.join(tempfile.gettempdir(),
                                        f"gamesched-beat-{settings.instance_id}")
    argv = workercmd.controller_argv(settings, schedule, loglevel, hostname)
    failures.require_redis(settings)  # once: later outages are Celery's to ride out
    workercmd.run_worker(settings, argv, metrics_port,
                         workercmd.memory_budget(settings, RoleName.CONTROL), RoleName.CONTROL)


def _state_option(state_file: Path | None, settings: Settings) -> Path:
    from app.cli import fleet as fleetcmd

    return state_file or fleetcmd.default_state_file(settings)


StateFile = Annotated[Path | None, typer.Option(
    help="The fleet's state file (default: gamesched-fleet-<instance>.json in the temp "
         "folder).")]


@fleet_cli.command("up")
def fleet_up(
    instance: Annotated[list[str] | None, typer.Option(
        help="A server instance: the player role runs one worker per instance (repeat the "
             "option); without it, one player worker serves the shared queue.")] = None,
    roles: Annotated[str | None, typer.Option(
        help="Comma list of roles to run (default: player,physics,ai,transactions,"
             "background,control).")] = None,
    log_dir: Annotated[Path | None, typer.Option(
        help="Where each worker logs, one file per node (default: gamesched-fleet-"
             "<instance> in the temp folder).")] = None,
    state_file: StateFile = None,
    loglevel: Annotated[str, typer.Option(help="The workers' Celery log level.")] = "INFO",
) -> None:
    """Start every worker of a fleet (each role, the controller with beat and the ledger's
    sweeper) and keep them running: a worker that exits is started again at once. Runs
    until SIGTERM or Ctrl-C (or `gamesched fleet down`), which stop every worker warm."""
    from app.cli import fleet as fleetcmd

    settings = _settings()
    if settings.embedded:
        console.print("A fleet of worker processes needs a broker they share: set "
                      "GAMESCHED_BROKER_URL=redis://... (the embedded default runs in one "
                      "process: `gamesched demo`).", markup=False)
        raise typer.Exit(2)
    try:
        chosen = fleetcmd.parse_roles(roles)
    except InvalidRequest as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    failures.require_redis(settings)
    folder = log_dir or Path(tempfile.gettempdir()) / f"gamesched-fleet-{settings.instance_id}"
    raise typer.Exit(fleetcmd.up(console, settings, roles=chosen, instances=instance or [],
                                 log_dir=folder, state_file=_state_option(state_file, settings),
                                 loglevel=loglevel))


@fleet_cli.command("status")
def fleet_status(state_file: StateFile = None) -> None:
    """Show the fleet this machine runs: each worker's pid, whether it runs, its restarts
    and its log."""
    from app.cli import fleet as fleetcmd

    path = _state_option(state_file, _settings())
    raise typer.Exit(0 if fleetcmd.status(console, path) else 1)


@fleet_cli.command("down")
def fleet_down(state_file: StateFile = None) -> None:
    """Stop the fleet this machine runs: every worker shuts down warm (tasks in progress
    finish), then its supervisor exits."""
    from app.cli import fleet as fleetcmd

    path = _state_option(state_file, _settings())
    raise typer.Exit(0 if fleetcmd.down(console, path) else 1)


@db_cli.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Bring the database schema up to REVISION (default: head)."""
    from app.db.migrate import upgrade

    settings = _settings()
    failures.require_database(settings.database_url)
    upgrade(settings.database_url, revision)
    console.print(f"database at {redact(settings.database_url)} is at {revision}",
                  markup=False, highlight=False)


@cli.command()
def status() -> None:
    """Show queue depths, server instances, the workers that answer, purchases settling, the
    sweeper's last run and the controller's last decision."""
    from app.cli import status as statuscmd

    statuscmd.show(console, _settings())


@cli.command()
def simulate(
    *,
    scenario: Annotated[str, typer.Option(help="steady|influx|physics-peak|world-event|"
                                               "promo-spike|purchase-surge")],
    players: Annotated[int, typer.Option(min=1, max=100_000, help="Sessions.")] = 5000,
    duration: Annotated[float, typer.Option(min=1, max=3600, help="Seconds of load.")] = 20.0,
    baseline: Annotated[str | None, typer.Option(
        help="Also run it on a baseline: naive (Celery as its documentation leads a team to "
        "write it), unscheduled (gamesched without its scheduling) or unthrottled (its "
        "game servers ignoring the controller's AI tier; world-event runs it by "
        "default).")] = None,
    faults: Annotated[str | None, typer.Option(
        help="kill-worker,kill-worker-every=9s,restart-broker,db-errors,partition,"
             "restart-fleet")] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the report.")] = None,
    plot: Annotated[Path | None, typer.Option(help="Write a PNG of latency and load.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the generated load.")] = 1,
    repeat: Annotated[int, typer.Option(min=1, max=20, help="Runs of the same seed; the "
                                        "report adds the median and range of each "
                                        "headline figure.")] = 1,
    find_capacity: Annotated[bool, typer.Option(
        "--find-capacity", help="Bisect the player count (from a twentieth to twice "
        "--players) for the largest that gamesched and the baseline (naive unless "
        "--baseline names another) each serve at "
        "player p99 < 50 ms with the game servers keeping up.")] = False,
    max_probes: Annotated[int | None, typer.Option(
        min=1, max=50, help="With --find-capacity: at most this many runs per system (each "
        "boots a fleet); the report's capacity.bracket says how far each search got. "
        "Default: until the bracket is within 5 %.")] = None,
    game_servers: Annotated[int | None, typer.Option(
        min=1, max=64, help="Game-server processes, each driving its share of the sessions "
        "(default: half the cores, at least 2).")] = None,
    instances: Annotated[int, typer.Option(
        min=0, max=64, help="Server instances, each a player worker serving the sessions "
        "placed on it (0: two player workers on one shared queue).")] = 0,
) -> None:
    """Drive simulated players against a worker fleet; print and write the report."""
    from app.cli import simulate as command

    options = command.Options(scenario, players, duration, seed, baseline, faults, json_path,
                              plot, repeat, find_capacity, game_servers, instances,
                              max_probes)
    try:
        command.simulate(console, _settings(), options)
    except InvalidRequest as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None


@cli.command()
def demo(
    sessions: Annotated[int, typer.Option(min=1, max=5000, help="Simulated sessions.")] = 300,
    duration: Annotated[float, typer.Option(min=1, max=600, help="Seconds of load.")] = 10.0,
    instances: Annotated[int, typer.Option(
        min=0, max=8, help="Server instances the sessions are placed on (0: one shared "
        "player queue).")] = 2,
) -> None:
    """Run a few hundred simulated sessions for a few seconds and print latency per queue."""
    from app.cli import demo as democmd

    settings = _settings()
    ok = democmd.show(console, settings, sessions, duration, instances)
    raise typer.Exit(0 if ok else 1)


@cli.command()
def drain(
    instance: Annotated[str, typer.Argument(help="The server instance to drain.")],
) -> None:
    """Move every session off a server instance for its maintenance; exits 1 when some
    have no room elsewhere."""
    from app.cli import drain as draincmd

    raise typer.Exit(0 if draincmd.show(console, _settings(), instance) else 1)


@cli.command()
def audit(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Verify the ledger with SQL: entries balance, wallets match their entries, no key
    applied twice, nothing pending longer than 2 s.  Exits 1 on any violation."""
    from app.cli import audit as auditcmd

    ok = auditcmd.show(console, _settings(), as_json)
    raise typer.Exit(0 if ok else 1)


@physics_cli.command()
def replay(
    file: Annotated[Path, typer.Argument(help="A scenario file (JSON; see docs/scenarios/).")],
    seed: Annotated[int, typer.Option(help="Seed of the scenario's spawns.")] = 1,
    depth: Annotated[int, typer.Option(
        help="Cut the world into the quadtree's regions this many levels deep (0 to 4).")] = 0,
    units: Annotated[int, typer.Option(
        help="Spread the regions over this many physics units (1 to 16).")] = 1,
    processes: Annotated[bool, typer.Option(
        help="Run each unit in a process of its own, in lockstep, exchanging bodies and "
             "halos through a private redis-server as the fleet's units do.")] = False,
) -> None:
    """Step a physics scenario to its end and print its final state's hash (same file, seed and depth: same hash, on any number of units, in one process or several)."""  # noqa: E501 - one line: --help keeps docstring line breaks
    from app.physics import scenario

    loaded = scenario.load(file)
    if processes:
        from app.physics import lockstep
        from app.simulate.redisserver import PrivateRedis

        with PrivateRedis() as server:
            result = lockstep.run(loaded, seed, depth, units, server.url)
    else:
        result = scenario.run(loaded, seed, depth, units)
    where = f"{units} unit{'s' if units > 1 else ''}" + (" in processes" if processes else "")
    console.print(f"{result.hash}  ({result.bodies} bodies, {result.frames} frames, seed {seed}, "
                  f"depth {depth}, {where})", highlight=False, soft_wrap=True)


@cli.command()
def placement(
    instances: Annotated[int, typer.Option(help="Server instances (1 to 10,000).")] = 100,
    sessions: Annotated[int, typer.Option(help="Sessions to place.")] = 100_000,
    seed: Annotated[int, typer.Option(help="Seed of the sessions' weights.")] = 1,
) -> None:
    """Place sessions on instances on paper, then add one instance and remove another: how even the load is and how much of it moves."""  # noqa: E501 - one line: --help keeps docstring line breaks
    from dataclasses import asdict

    from app.simulate.placing import paper_run

    try:
        run = paper_run(instances, sessions, seed)
    except InvalidRequest as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    for name, value in asdict(run).items():
        console.print(f"{name:20} {value}", highlight=False)


def main() -> None:
    """Console-script entry point.  A service the command cannot use ends it with one line
    on stderr and exit code 2 (`app.cli.failures`); gamesched's other errors exit 2 too;
    anything else propagates unchanged."""
    try:
        cli()
    except failures.ServiceUnavailable as exc:
        _unavailable(exc)
    except GameschedError as exc:
        console.print(f"[red]error:[/] {exc}")
        sys.exit(2)
    except failures.SERVICE_ERRORS as exc:
        problem = failures.classify(exc)
        if problem is None:
            raise
        _unavailable(problem)


def _unavailable(problem: failures.ServiceUnavailable) -> NoReturn:
    print(f"gamesched: {problem}", file=sys.stderr)
    sys.exit(2)

