"""`gamesched simulate` end to end on real services, and its faults on a real fleet."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest

from app.client.api import GameClient
from app.fleet.fleets import ProcessFleet
from app.instances.memory import MemoryRegistry
from app.settings import load_settings
from app.simulate.faults import PLACED_STEP, RESTART_STEPS, Fault, FaultInjector
from app.simulate.redisserver import PrivateRedis
from app.simulate.restarts import AtKill
from app.tasking.factory import create_app
from tests.subprocesses import ROOT
from tests.waiting import wait_for


def simulate(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GAMESCHED_")}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "simulate", *args], cwd=tmp_path,
        env={**clean, **env, "PYTHONPATH": str(ROOT), "COLUMNS": "120"},
        capture_output=True, text=True, timeout=240, check=False)


def check_run(part: dict[str, Any]) -> None:
    player = part["player"]
    assert player["updates"] > 0 and part["player_batches"]["applied"] > 0
    assert player["timed"] == player["updates"]  # every update handed over is timed
    assert 0 <= player["p50_ms"] <= player["p99_ms"] <= player["p999_ms"] <= player["max_ms"]
    assert player["service_p99_ms"] > 0
    assert part["physics"]["frames"] >= part["physics"]["frames_run"] > 0
    assert 0.0 <= part["physics"]["within_budget_ratio"] <= 1.0
    assert part["ai"]["batches"] > 0
    assert part["background"]["capacity_per_s"] > 0
    assert part["background"]["offered_per_s"] > 0
    assert 0 < part["fleet"]["cpu_p95"] <= 1.0 and part["fleet"]["peak_rss_mb"] > 50
    assert 0 < part["simulator"]["cpu_p95"] <= 1.0
    simulator = part["simulator"]
    servers = simulator["game_servers"]  # the load came from game-server processes
    assert len({g["pid"] for g in servers}) == len(servers) >= 2
    assert sum(g["ticks_planned"] for g in servers) == simulator["ticks_planned"]
    assert simulator["kept_up"] == all(g["kept_up"] for g in servers)
    assert "cpu_p95" in part["services"]
    server = part["server"]  # the private Redis servers are found by their own process ids
    assert server["cpu_p95"] >= part["fleet"]["cpu_p95"]
    assert {"workers", "broker_redis", "hot_redis"} <= set(server["cpu_mean_by_kind"])
    network = part["network"]
    assert 0 < network["bytes_per_update"] < network["bytes_per_update_full_state"]
    assert network["bytes_per_update_full_state"] < network["bytes_per_update_full_state_json"]
    ledger = part["transactions"]
    assert ledger["committed"] + ledger["rejected"] == ledger["submitted"] > 0
    assert ledger["applied_twice"] == 0 and ledger["lost"] == 0
    assert ledger["balance_drift"] == 0 and ledger["success_ratio"] == 1.0
    assert 0 < ledger["p99_commit_ms"] <= ledger["max_commit_ms"]
    for absent in ("balance", "sessions", "faults"):  # subsystems that did not run
        assert absent not in part


def test_simulate_with_the_naive_baseline_writes_the_report_and_the_plot(
        tmp_path: Path, postgres_url: str, redis_server_binary: str) -> None:
    proc = simulate(tmp_path, {"GAMESCHED_DATABASE_URL": postgres_url},
                    "--scenario", "purchase-surge", "--players", "200", "--duration", "3",
                    "--baseline", "naive", "--json", "r.json", "--plot", "r.png",
                    "--game-servers", "3")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert len(report["simulator"]["game_servers"]) == 3
    # purchase-surge is a store event: lighter play and enough purchases (some sent two or
    # three times with one key) that a three-second run exercises the ledger too.
    assert report["scenario"] == "purchase-surge" and report["players"] == 200
    assert 2.5 <= report["duration_s"] <= 6.0
    assert report["broker"].startswith("private redis-server redis://127.0.0.1:")
    assert report["database"] == postgres_url
    assert report["machine"]["cores"] >= 1 and report["machine"]["memory_mb"] > 0
    assert report["mode"] == "gamesched" and report["baseline"]["mode"] == "naive"
    assert report["run_order"] == ["naive", "gamesched"]  # seed 1: the baseline first
    check_run(report)
    check_run(report["baseline"])
    # the same background work: 1.5 times what the first run (the baseline's) measured
    assert report["background"]["scheduled_per_s"] == pytest.approx(
        report["baseline"]["background"]["scheduled_per_s"], rel=1e-9)
    assert report["background"]["scheduled_per_s"] == pytest.approx(
        1.5 * report["baseline"]["background"]["capacity_per_s"], rel=1e-3)
    assert report["comparison"]["player_p99_ratio"] > 0
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "player p99 ms (from acted)" in proc.stdout and "naive Celery" in proc.stdout
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith(("valid run", "NOT A VALID RUN")), last


def test_repeat_runs_the_same_seed_again_and_reports_the_spread_on_two_instances(
        tmp_path: Path, redis_server_binary: str) -> None:
    proc = simulate(tmp_path, {}, "--scenario", "steady", "--players", "100", "--duration",
                    "2", "--seed", "4", "--repeat", "2", "--json", "r.json", "--instances", "2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    balance = report["balance"]  # the sessions lay on two server instances, evenly
    assert balance["instances"] == 2 and set(balance["sessions"]) == {"i0", "i1"}
    assert sum(balance["sessions"].values()) == report["players"]
    assert 1.0 <= balance["max_over_mean"] <= 1.2
    assert "instance load max / mean" in proc.stdout
    # each instance kept its sessions' state on a private redis-server of its own, and
    # what its workers applied there is counted, as is those servers' CPU
    stores = balance["hot_stores"]
    assert len(set(stores.values())) == 2 and None not in stores.values()
    assert not any(store in report[shared] for store in stores.values()
                   for shared in ("broker", "hot_state"))
    # both stores' counts, each of about half the sessions: every update sent was applied,
    # or found stale (a newer one of its session, run first on another thread or at another
    # priority step, had written its fields)
    player = report["player"]
    assert report["simulator"]["drained"] and player["unapplied"] == 0
    assert player["applied"] == report["network"]["updates_applied"]
    assert player["applied"] + player["stale"] == player["updates"]
    assert player["rejected"] == 0  # the game servers sent no bad update
    assert {"hot_redis_i0", "hot_redis_i1"} <= set(report["server"]["cpu_mean_by_kind"])
    repeat = report["repeat"]
    assert repeat["runs"] == 2 and 0 <= repeat["kept_up"] <= 2
    p99 = repeat["player.p99_ms"]
    assert p99["runs"] == 2 and p99["min"] <= p99["median"] <= p99["max"]
    assert report["player"]["p99_ms"] in (p99["min"], p99["max"])  # the first run in full
    assert report["run_order"] == ["gamesched"]


def test_find_capacity_bisects_for_gamesched_and_the_baseline_in_one_command(
        tmp_path: Path, redis_server_binary: str) -> None:
    # two runs of each system at most: the bounds, or the lower one alone when it misses
    proc = simulate(tmp_path, {}, "--scenario", "steady", "--players", "100", "--duration",
                    "1.5", "--find-capacity", "--baseline", "unscheduled", "--json", "r.json",
                    "--max-probes", "2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["bounds"] == [50, 200] and report["baseline"]["mode"] == "unscheduled"
    for part in (report["capacity"], report["baseline"]["capacity"]):
        assert part["target_p99_ms"] == 50.0
        probes = [(p["players"], p["passed"]) for p in part["probes"]]
        assert probes in ([(50, False)], [(50, True), (200, False)], [(50, True), (200, True)])
        passed = [players for players, ok in probes if ok]
        failed = [players for players, ok in probes if not ok]
        assert part["sessions"] == (max(passed) if passed else None)
        assert part["bracket"] == [part["sessions"], min(failed) if failed else None]
    ours, theirs = report["capacity"]["sessions"], report["baseline"]["capacity"]["sessions"]
    assert report["capacity"]["ratio"] == (round(ours / theirs, 2) if ours and theirs
                                           else None)
    assert "capacity at player p99 < 50 ms" in proc.stdout


def test_faults_kill_a_worker_and_restart_the_broker_and_the_fleet_recovers(
        tmp_path: Path, redis_server_binary: str) -> None:
    with PrivateRedis(redis_server_binary) as server:
        settings = load_settings(broker_url=server.url, record_latency=True,
                                 database_url=f"sqlite:///{tmp_path / 'g.db'}",
                                 instance_id="sim-faults")
        app = create_app(settings)
        with ProcessFleet(settings, roles=("ai",), env=settings.to_env(),
                          log_dir=str(tmp_path)) as fleet:
            killed = fleet.procs["ai"].pid
            plan = [Fault(0.0, "kill-worker", "ai"), Fault(0.0, "restart-broker", "redis")]
            injector = FaultInjector(plan, fleet, settings, server)
            injector.start()
            wait_for(lambda: len(injector.events) == 2, timeout=90, what="both faults")
            injector.stop()
            events = injector.finish()
            assert sorted(e.kind for e in events) == ["kill-worker", "restart-broker"]
            assert all(e.recovered_s is not None for e in events)
            assert fleet.procs["ai"].pid != killed and fleet.procs["ai"].poll() is None
            assert not psutil.pid_exists(killed)
            client = GameClient(app, settings)
            client.submit_ai("npc-1", (1.0, 1.0), [])
            client.close()
            wait_for(lambda: [e for e in app.runtime.recorder.drain() if e.ok], timeout=30,
                     what="the restarted worker to run a task on the restarted broker")
            # the fleet's workers log warnings only: no line per task received and done
            assert "--loglevel" in psutil.Process(fleet.procs["ai"].pid).cmdline()
            assert "gamesched.ai.decide" not in (tmp_path / "ai.log").read_text()


def test_a_fleet_restart_is_timed_from_the_kill_step_by_step(
        tmp_path: Path, redis_server_binary: str) -> None:
    with PrivateRedis(redis_server_binary) as broker, PrivateRedis(redis_server_binary) as hot:
        settings = load_settings(broker_url=broker.url, hot_url=hot.url,
                                 database_url=f"sqlite:///{tmp_path / 'g.db'}",
                                 instance_id="sim-restart")
        with ProcessFleet(settings, roles=("ai",), env=settings.to_env(),
                          log_dir=str(tmp_path)) as fleet:
            killed = fleet.procs["ai"].pid
            registry = MemoryRegistry()  # where a game server places its session again
            injector = FaultInjector([Fault(0.0, "restart-fleet", "fleet")], fleet, settings,
                                     broker, hot_servers=[hot],
                                     at_kill=lambda: AtKill(durable={"s1": 3}),
                                     owners=registry.owners)
            injector.start()
            wait_for(lambda: injector.events, timeout=90, what="the fleet back")
            registry.heartbeat("i0", 10)
            assert registry.place("s1", 1.0) == "i0"
            (event,) = injector.finish()
            assert fleet.procs["ai"].pid != killed and fleet.procs["ai"].poll() is None
    assert event.kind == "restart-fleet" and event.steps is not None
    steps = [event.steps[name] for name in (*RESTART_STEPS, PLACED_STEP)]
    assert steps == sorted(steps) and steps[0] >= 0
    assert event.recovered_s is not None and event.steps[PLACED_STEP] >= event.recovered_s
    # the workers answer after they were started, which is after Redis was back
    assert event.recovered_s is not None and event.recovered_s >= event.steps["sessions_back"]
