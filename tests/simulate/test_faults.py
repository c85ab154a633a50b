"""--faults: names are checked, and the fault times are seeded."""

from __future__ import annotations

from collections import Counter
from typing import cast

import pytest

from app.errors import InvalidRequest
from app.fleet.fleets import ProcessFleet
from app.fleet.roles import WORKER_ROLES
from app.settings import load_settings
from app.simulate.faults import FaultInjector, launchers, parse_faults, plan_faults


def test_fault_names_are_checked() -> None:
    assert parse_faults("kill-worker, restart-broker,kill-worker") == (
        "kill-worker", "restart-broker")
    assert parse_faults(None) == ()
    with pytest.raises(InvalidRequest, match="faults"):
        parse_faults("kill-workers")
    assert parse_faults("partition") == ("partition",)


def test_a_partition_cuts_the_first_instance_off_once_and_only_where_it_has_one() -> None:
    (fault,) = plan_faults(("partition",), duration_s=30.0, seed=2)
    assert (fault.kind, fault.target) == ("partition", "player") and 3.0 <= fault.at_s <= 12.0
    assert plan_faults(("partition",), duration_s=30.0, seed=2, roles=("all",)) == []


def test_kill_worker_kills_each_role_twice_at_seeded_times_inside_the_run() -> None:
    plan = plan_faults(("kill-worker",), duration_s=20.0, seed=3)
    assert Counter(f.target for f in plan) == dict.fromkeys(WORKER_ROLES, 2)
    assert all(2.0 <= f.at_s <= 18.0 for f in plan)
    assert [f.at_s for f in plan] == sorted(f.at_s for f in plan)
    assert plan == plan_faults(("kill-worker",), duration_s=20.0, seed=3)
    assert plan != plan_faults(("kill-worker",), duration_s=20.0, seed=4)


def test_restart_broker_happens_once_mid_run() -> None:
    (fault,) = plan_faults(("restart-broker",), duration_s=10.0, seed=1)
    assert fault.kind == "restart-broker" and 3.0 <= fault.at_s <= 7.0


def test_faults_follow_the_roles_of_the_fleet_they_hit() -> None:
    # the textbook baseline runs one worker node of every task ("all")
    plan = plan_faults(("kill-worker",), duration_s=20.0, seed=3, roles=("all",))
    assert {f.target for f in plan} == {"all"} and len(plan) == 2
    assert set(launchers(("db-errors",), seed=1, roles=("all",))) == {"all"}
    assert set(launchers(("db-errors",), seed=1)) == {"transactions", "control"}


def test_restart_fleet_happens_once_with_time_left_to_come_back() -> None:
    plan = plan_faults(("partition", "restart-fleet"), duration_s=30.0, seed=5)
    assert sorted(f.kind for f in plan) == ["partition", "restart-fleet"]
    (restart,) = [f for f in plan if f.kind == "restart-fleet"]
    assert restart.target == "fleet" and 12.0 <= restart.at_s <= 15.0
    assert parse_faults("restart-fleet") == ("restart-fleet",)


def test_kill_worker_every_kills_the_transactions_worker_on_a_period() -> None:
    assert parse_faults("kill-worker-every=9s,restart-broker") == (
        "kill-worker-every=9s", "restart-broker")
    plan = plan_faults(("kill-worker-every=9s",), duration_s=45.0, seed=1)
    assert [(f.at_s, f.kind, f.target) for f in plan] == [
        (9.0 * k, "kill-worker", "transactions") for k in range(1, 5)]
    for bad in ("kill-worker-every=0s", "kill-worker-every=soon", "kill-worker-every=-3s"):
        with pytest.raises(InvalidRequest, match=bad):
            parse_faults(bad)


def test_restart_fleet_needs_both_private_redis_servers() -> None:
    plan = plan_faults(("restart-fleet",), duration_s=30.0, seed=5)
    settings = load_settings()
    with pytest.raises(InvalidRequest, match=r"restart-fleet.*GAMESCHED_HOT_URL"):
        FaultInjector(plan, cast(ProcessFleet, None), settings, redis_server=None)
