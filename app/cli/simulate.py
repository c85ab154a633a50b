"""``gamesched simulate``: run the scenario (and the baseline), print a table, write the JSON
report and the plot."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from app.cli.failures import require_database, require_redis
from app.errors import InvalidRequest
from app.fleet.worker import SWITCH_INTERVAL_S
from app.settings import Settings
from app.simulate.capacity import TARGET_P99_MS, passes, search
from app.simulate.environment import Services, configured, services
from app.simulate.faults import parse_faults
from app.simulate.gameservers import default_count
from app.simulate.modes import BASELINES, MODES
from app.simulate.plot import write_plot
from app.simulate.report import build_report, repeat_summary
from app.simulate.runner import Run, RunResult, RunSpec
from app.simulate.scenarios import scenario


@dataclass(frozen=True)
class Options:
    """The command line of ``gamesched simulate``."""

    scenario: str
    players: int
    duration_s: float
    seed: int = 1
    baseline: str | None = None
    faults: str | None = None
    json_path: Path | None = None
    plot_path: Path | None = None
    repeat: int = 1
    find_capacity: bool = False
    game_servers: int | None = None  # None: sized to the machine
    instances: int = 0  # server instances; 0: one shared player queue
    max_probes: int | None = None  # runs per system of a capacity search; None: to 5 %


def spec_of(options: Options) -> RunSpec:
    """Validate `options` into a run spec, or raise InvalidRequest naming the option."""
    if options.baseline is not None and options.baseline not in BASELINES:
        raise InvalidRequest("baseline", options.baseline, f"expected {', '.join(BASELINES)}")
    if options.max_probes is not None and not options.find_capacity:
        raise InvalidRequest("max-probes", options.max_probes, "bounds a capacity search: "
                             "give --find-capacity too")
    faults = parse_faults(options.faults)
    if "partition" in faults and options.instances < 2:
        raise InvalidRequest("faults", "partition", "cuts one server instance off: needs "
                             "--instances 2 or more")
    return RunSpec(scenario=scenario(options.scenario), players=options.players,
                   duration_s=options.duration_s, seed=options.seed,
                   faults=faults,
                   game_servers=options.game_servers or default_count(),
                   instances=options.instances)


def simulate(console: Console, settings: Settings, options: Options) -> dict[str, Any]:
    """Run the simulation, print its table, write what was asked; returns the report.
    Raises ServiceUnavailable when a configured Redis or database does not answer."""
    spec = spec_of(options)
    require_redis(settings)
    if configured("database_url"):  # else the simulation makes a SQLite file of its own
        require_database(settings.database_url)
    # The tick loop keeps this process busy; the client's coalescing thread must still get
    # the interpreter every tick to hand each batch over on time.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    with _stopped_cleanly_on_sigterm(), services(settings, spec.instance_names) as env:
        console.print(f"gamesched simulate: {spec.scenario.name} ({spec.scenario.summary}); "
                      f"{spec.players} players for {spec.duration_s:g}s, seed {spec.seed}; "
                      f"broker {env.broker_label}, hot state {env.hot_label}, "
                      f"database {env.database_label}")
        if options.find_capacity:
            return _find_capacity(console, options, spec, settings, env)
        beside = options.baseline or spec.scenario.compare
        with _progress(console) as progress:
            results = [_runs(spec, settings, env, progress, beside)
                       for _ in range(options.repeat)]
        reports = [build_report(spec, env, ours, baseline) | {"run_order": order}
                   for ours, baseline, order in results]
    report = reports[0]  # the first run in full; the others in the repeat summary
    if options.repeat > 1:
        report["repeat"] = repeat_summary(reports)
    ours, baseline, _ = results[0]
    console.print(summary_table(report))
    _warn(console, report)
    _write(console, options, report, ours, baseline)
    line = verdict(report)
    console.print(line, style="red" if line.startswith("NOT") else "bold", soft_wrap=True)
    return report


def _find_capacity(console: Console, options: Options, spec: RunSpec, settings: Settings,
                   env: Services) -> dict[str, Any]:
    """Bisect the player count, between a twentieth and twice `spec.players`, for the
    largest that gamesched and then the baseline (naive unless another is named) serve at
    the target; print and write the answer."""
    low, high = max(50, spec.players // 20), spec.players * 2
    baseline = options.baseline or "naive"

    def runner(mode: str, progress: Progress) -> Callable[[int], dict[str, Any]]:
        def run(players: int) -> dict[str, Any]:
            probe = replace(spec, players=players)
            result = Run(probe, settings, env, mode, progress=progress).execute(None)
            report = build_report(probe, env, result, None)
            console.print(f"  {mode} at {players} players: {verdict_of(report)}")
            return report
        return run

    with _progress(console) as progress:
        ours = search(runner("gamesched", progress), low, high, max_probes=options.max_probes)
        theirs = search(runner(baseline, progress), low, high, max_probes=options.max_probes)
    ratio = (round(ours.sessions / theirs.sessions, 2)
             if ours.sessions and theirs.sessions else None)
    report = {"scenario": spec.scenario.name, "duration_s": spec.duration_s,
              "seed": spec.seed, "bounds": [low, high],
              "capacity": ours.as_report() | {"ratio": ratio},
              "baseline": {"mode": baseline, "capacity": theirs.as_report()}}
    console.print(f"capacity at player p99 < {TARGET_P99_MS:g} ms with the game servers "
                  f"keeping up: gamesched {ours.sessions}, {baseline} {theirs.sessions}, "
                  f"ratio {ratio}", soft_wrap=True)
    _write_json(console, options.json_path, report)
    return report


def verdict_of(report: dict[str, Any]) -> str:
    """One probe's figures, in a few words."""
    probe = passes(report)
    return (f"p99 {probe.p99_ms} ms, {'kept up' if probe.kept_up else 'fell behind'}: "
            f"{'holds' if probe.passed else 'misses'} the target")


def run_order(seed: int, baseline: str | None) -> list[str]:
    """Which system runs first: ours on even seeds, the baseline on odd ones."""
    if baseline is None:
        return ["gamesched"]
    return ["gamesched", baseline] if seed % 2 == 0 else [baseline, "gamesched"]


def _runs(spec: RunSpec, settings: Settings, env: Services, progress: Progress,
          baseline: str | None) -> tuple[RunResult, RunResult | None, list[str]]:
    """Our run and the baseline's, in an order that alternates with the seed (a machine
    that drifts during a command then favours neither); the second is offered exactly the
    background rate the first measured."""
    order = run_order(spec.seed, baseline)
    runs: dict[str, RunResult] = {}
    capacity = None
    for mode in order:
        runs[mode] = Run(spec, settings, env, mode, progress=progress).execute(capacity)
        capacity = capacity or runs[mode].capacity
    return runs["gamesched"], runs.get(baseline) if baseline else None, order


@contextlib.contextmanager
def _stopped_cleanly_on_sigterm() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so the worker fleet and the private Redis stop too."""
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _progress(console: Console) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(),
                    TextColumn("{task.completed:.0f}/{task.total:.0f}"), TimeElapsedColumn(),
                    console=console, refresh_per_second=4, transient=True)


ROWS: tuple[tuple[str, str, str], ...] = (
    ("player updates", "player", "updates"),
    ("player updates/s offered", "player", "offered_per_s"),
    ("player p50 ms (from acted)", "player", "p50_ms"),
    ("player p99 ms (from acted)", "player", "p99_ms"),
    ("player p99.9 ms (from acted)", "player", "p999_ms"),
    ("player max ms (from acted)", "player", "max_ms"),
    ("player p99 ms (hand-off, per batch)", "player", "service_p99_ms"),
    ("state batches sent", "player_batches", "sent"),
    ("updates per batch", "player_batches", "updates_per_batch"),
    ("state batches gathered into another's task", "player_batches", "gathered"),
    ("physics frames due", "physics", "frames"),
    ("physics within 16 ms", "physics", "within_budget_ratio"),
    ("physics p99 frame ms", "physics", "frame_p99_ms"),
    ("physics units", "physics", "units"),
    ("physics costliest unit / mean (CPU)", "physics", "unit_max_over_mean"),
    ("physics regions moved", "physics", "moves"),
    ("server instances", "balance", "instances"),
    ("instance load max / mean", "balance", "max_over_mean"),
    ("ai decisions", "ai", "decisions_sent"),
    ("ai p99 ms", "ai", "p99_ms"),
    ("ai slowest NPC's decisions/s", "ai", "min_npc_hz"),
    ("background capacity/s", "background", "capacity_per_s"),
    ("background offered/s", "background", "offered_per_s"),
    ("background completed/s", "background", "completed_per_s"),
    ("transactions submitted", "transactions", "submitted"),
    ("transactions success ratio", "transactions", "success_ratio"),
    ("transactions wallets off (arithmetic)", "transactions", "balance_drift"),
    ("transactions p99 commit ms", "transactions", "p99_commit_ms"),
    ("server cpu p95 (workers, Redis, PostgreSQL)", "server", "cpu_p95"),
    ("fleet cpu p95 (workers)", "fleet", "cpu_p95"),
    ("fleet peak rss MB", "fleet", "peak_rss_mb"),
    ("simulator cpu p95", "simulator", "cpu_p95"),
    ("game servers cpu p95 (simulator, store)", "client", "cpu_p95"),
    ("simulator lag p99 ms", "simulator", "lag_p99_ms"),
    ("simulator ticks dropped", "simulator", "ticks_dropped"),
    ("simulator kept up", "simulator", "kept_up"),
    ("services cpu p95", "services", "cpu_p95"),
    ("network bytes/update", "network", "bytes_per_update"),
    ("network full-state bytes/update (msgpack)", "network", "bytes_per_update_full_state"),
    ("network full-state bytes/update (JSON)", "network", "bytes_per_update_full_state_json"),
)


def summary_table(report: dict[str, Any]) -> Table:
    """The short table printed at the end: our figures and the baseline's side by side."""
    baseline = report.get("baseline")
    table = Table(title=f"{report['scenario']}: {report['players']} players, "
                        f"{report['duration_s']:.1f}s")
    table.add_column("measure")
    table.add_column("gamesched", justify="right")
    if baseline is not None:
        table.add_column(MODES[baseline["mode"]].label, justify="right")
    for label, section, key in ROWS:
        values = [_cell(report, section, key)]
        if baseline is not None:
            values.append(_cell(baseline, section, key))
        if any(v != "-" for v in values):
            table.add_row(label, *values)
    return table


def _cell(report: dict[str, Any], section: str, key: str) -> str:
    value = report.get(section, {}).get(key)
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def _warn(console: Console, report: dict[str, Any]) -> None:
    for label, part in _parts(report):
        sim = part.get("simulator", {})
        if sim and not sim.get("drained", True):
            console.print(f"[yellow]{label}: some latency-bound tasks never ran "
                          f"(see player_batches.unapplied and player.unapplied)[/]")
        if sim.get("first_error"):
            console.print(f"[yellow]{label}: {sim['rejected']} refused, {sim['send_errors']} "
                          f"send errors; first: {sim['first_error']}[/]")
    for error in report.get("errors", []):
        console.print(f"[red]{error}[/]")
    ratio = report.get("comparison", {}).get("player_p99_ratio")
    if ratio is not None:
        console.print(f"{report['baseline']['mode']} player p99 / gamesched player p99 = "
                      f"{ratio:g}x")


def _parts(report: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Ours and the baseline's part of `report`, by system name."""
    baseline = report.get("baseline")
    return [("gamesched", report)] + ([(baseline["mode"], baseline)] if baseline else [])


def verdict(report: dict[str, Any]) -> str:
    """The command's last line: whether the game servers kept to the schedule, without
    which the figures do not describe the planned load."""
    behind = []
    for label, part in _parts(report):
        sim = part.get("simulator")
        if sim and not sim.get("kept_up"):
            behind.append(f"{label} (lag p99 {sim.get('lag_p99_ms')} ms, "
                          f"{sim.get('ticks_dropped')} ticks dropped)")
    repeat = report.get("repeat")
    if repeat and repeat["kept_up"] < repeat["runs"]:
        behind.append(f"{repeat['runs'] - repeat['kept_up']} of {repeat['runs']} repeated runs")
    if behind:
        return ("NOT A VALID RUN: the game servers fell behind the schedule in "
                + ", ".join(behind) + "; its figures do not describe the planned load")
    return "valid run: the game servers kept to the schedule (lag p99 <= 10 ms, no tick dropped)"


def _write(console: Console, options: Options, report: dict[str, Any], ours: RunResult,
           baseline: RunResult | None) -> None:
    _write_json(console, options.json_path, report)
    if options.plot_path is not None:
        runs = [("gamesched", ours)] + ([(MODES[baseline.mode].label, baseline)]
                                        if baseline else [])
        write_plot(options.plot_path, runs)
        console.print(f"plot written to {options.plot_path}")


def _write_json(console: Console, path: Path | None, report: dict[str, Any]) -> None:
    if path is not None:
        path.write_text(json.dumps(report, indent=2) + "\n")
        console.print(f"report written to {path}")
