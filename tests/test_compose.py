"""docker-compose.yml cannot run here (no Docker engine), so its wiring is checked as data."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import click
import pytest
import typer
import yaml
from typer.exceptions import TyperException

from app.cli.main import cli
from app.fleet.roles import WORKER_ROLES
from app.settings import ENV_PREFIX, Settings
from app.simulate.modes import REPLICAS
from app.tasking.factory import GameschedCelery

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def _ours(service: dict[str, Any]) -> bool:
    return service.get("image") == "gamesched:latest"


def _resolve(command: list[str]) -> Any:
    """Walk the real CLI with `command`'s words; fails on any word it does not know."""
    assert command[0] == "gamesched"
    node: Any = typer.main.get_command(cli)
    words = command[1:]
    while hasattr(node, "get_command"):  # a group: the next word names a subcommand
        assert words, "a group needs a subcommand"
        sub = node.get_command(click.Context(node), words[0])
        assert sub is not None, f"unknown command {words[0]!r}"
        node, words = sub, words[1:]
    node.make_context(node.name or "", list(words))  # parses options: unknown ones fail
    return node


def test_every_gamesched_service_runs_a_real_command(compose: dict[str, Any]) -> None:
    ours = {name: s for name, s in compose["services"].items() if _ours(s)}
    assert len(ours) >= 7
    for service in ours.values():
        if service["command"][0] == "celery":  # Celery's own tools, on an app of ours
            _app_of(service["command"])
        else:
            _resolve(service["command"])


def _app_of(command: list[str]) -> Any:
    """The app a ``celery -A module ...`` command names: the module must import and hold
    gamesched's app (``celery``)."""
    module = importlib.import_module(command[command.index("-A") + 1])
    app = module.celery
    assert isinstance(app, GameschedCelery)
    return app


def test_flower_runs_on_the_tools_app_with_the_fleets_settings(
        compose: dict[str, Any]) -> None:
    flower = compose["services"]["flower"]
    assert _ours(flower) and flower["command"][-2:-1] == ["flower"]
    assert flower["command"][:3] == ["celery", "-A", "app.tasking.tools"]
    env = flower["environment"]
    assert env["GAMESCHED_BROKER_URL"] == compose["services"]["worker-ai"]["environment"][
        "GAMESCHED_BROKER_URL"]


@pytest.mark.parametrize("command", [
    ["gamesched", "nope"],
    ["gamesched", "worker", "--role", "ai", "--bogus", "1"],
    ["gamesched", "db"],
    ["celery", "worker"],
])
def test_a_wrong_command_is_caught(command: list[str]) -> None:
    with pytest.raises((AssertionError, click.UsageError, TyperException)):
        _resolve(command)


def test_one_worker_service_per_role_and_per_physics_unit_and_a_controller(
        compose: dict[str, Any]) -> None:
    commands = [s["command"] for s in compose["services"].values() if _ours(s)]
    workers = [c for c in commands if c[1] == "worker"]
    roles = [c[c.index("--role") + 1] for c in workers]
    assert sorted(set(roles)) == sorted(WORKER_ROLES)
    units = [int(c[c.index("--unit") + 1]) for c in workers if "--unit" in c]
    assert roles.count("physics") == len(units)
    assert sorted(units) == list(range(Settings.model_fields["physics_units"].default))
    assert any(c[:2] == ["gamesched", "controller"] for c in commands)


def test_the_player_and_transactions_roles_run_the_measured_replicas(
        compose: dict[str, Any]) -> None:
    replicas = {c["command"][c["command"].index("--role") + 1]: c.get("deploy", {}).get(
        "replicas", 1) for c in compose["services"].values()
        if _ours(c) and c["command"][1] == "worker"}
    assert replicas == {role: REPLICAS.get(role, 1) for role in WORKER_ROLES}


def test_services_share_only_known_settings(compose: dict[str, Any]) -> None:
    known = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}
    for service in compose["services"].values():
        for variable in service.get("environment", {}):
            if variable.startswith(ENV_PREFIX):
                assert variable in known, variable


@pytest.mark.parametrize("name", ["redis", "redis-hot"])
def test_redis_is_durable_and_never_evicts(compose: dict[str, Any], name: str) -> None:
    command = " ".join(compose["services"][name]["command"])
    assert "--appendonly yes" in command
    assert "--maxmemory-policy noeviction" in command
    assert {"postgres", "flower"} <= set(compose["services"])
    assert f"{name}-data:/data" in compose["services"][name]["volumes"]


def test_hot_state_has_a_redis_of_its_own(compose: dict[str, Any]) -> None:
    for service in compose["services"].values():
        if _ours(service) and service["command"][1] in ("worker", "controller"):
            env = service["environment"]
            assert env["GAMESCHED_HOT_URL"] == "redis://redis-hot:6379/0"
            assert env["GAMESCHED_BROKER_URL"] == "redis://redis:6379/0"
            assert "redis-hot" in service["depends_on"]
