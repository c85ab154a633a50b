"""Settings: defaults that run anywhere, and start-up errors that name the variable."""

from __future__ import annotations

import pytest

from app.errors import ConfigError
from app.players.hotstore import RedisHotStore
from app.settings import load_settings
from app.tasking.runtime import Runtime


def test_defaults_need_no_service() -> None:
    settings = load_settings()
    assert settings.embedded
    assert settings.database_url.startswith("sqlite:///")
    assert settings.cpu_cap == 0.80
    assert settings.player.concurrency >= 1


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("GAMESCHED_CPU_CAP", "1.5"),
        ("GAMESCHED_CPU_CAP", "lots"),
        ("GAMESCHED_TICK_MS", "0"),
        ("GAMESCHED_PLAYER__CONCURRENCY", "zero"),
        ("GAMESCHED_AI__MEMORY_MB", "1"),
        ("GAMESCHED_BROKER_URL", "ftp://example"),
        ("GAMESCHED_DATABASE_URL", "mysql://x"),
        ("GAMESCHED_HOT_URL", "memory://"),
        ("GAMESCHED_INSTANCE_ID", ""),
    ],
)
def test_invalid_value_names_variable_and_value(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert caught.value.variable == variable
    assert str(caught.value.value) == value
    assert variable in str(caught.value)


def test_unknown_variable_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAMESCHED_CPU_CAPP", "0.5")
    with pytest.raises(ConfigError, match="GAMESCHED_CPU_CAPP"):
        load_settings()


def test_nested_role_budget_reads_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAMESCHED_PHYSICS__CONCURRENCY", "6")
    assert load_settings().physics.concurrency == 6


def test_to_env_round_trips(monkeypatch: pytest.MonkeyPatch) -> None:
    original = load_settings(record_latency=True, broker_url="redis://127.0.0.1:6379/4",
                             session_weights={"ranked": 0.9, "coop": 0.8, "casual": 0.5,
                                              "spectator": 0.1, "lobby": 0.0})
    for name, value in original.to_env().items():
        monkeypatch.setenv(name, value)
    assert load_settings() == original


def test_session_weights_must_cover_every_type() -> None:
    with pytest.raises(ConfigError, match="GAMESCHED_SESSION_WEIGHTS"):
        load_settings(session_weights={"ranked": 1.0})


def test_hot_state_lives_on_the_broker_unless_given_a_redis_of_its_own() -> None:
    on_broker = load_settings(broker_url="redis://127.0.0.1:6379/0")
    assert on_broker.hot_url is None and on_broker.hot_store_url == "redis://127.0.0.1:6379/0"
    apart = load_settings(broker_url="redis://127.0.0.1:6379/0",
                          hot_url="redis://127.0.0.1:6380/0")
    assert apart.hot_store_url == "redis://127.0.0.1:6380/0"
    assert apart.to_env()["GAMESCHED_HOT_URL"] == "redis://127.0.0.1:6380/0"


def test_the_hot_stores_name_is_its_redis_address_without_credentials() -> None:
    on_broker = load_settings(broker_url="redis://:secret@Redis.Example:6379/2")
    assert on_broker.hot_store_name == "redis://redis.example:6379/2"
    apart = load_settings(broker_url="redis://127.0.0.1:6379/0",
                          hot_url="rediss://player:secret@10.0.0.5/3")
    assert apart.hot_store_name == "rediss://10.0.0.5:6379/3"
    defaults_spelled_out = load_settings(broker_url="redis://127.0.0.1:6379/0")
    assert load_settings(broker_url="redis://127.0.0.1").hot_store_name == (
        defaults_spelled_out.hot_store_name)
    assert load_settings().hot_store_name == "memory://"  # the embedded default's


def test_a_named_hot_store_keeps_its_name_wherever_its_redis_is(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAMESCHED_HOT_STORE", "eu-west-hot-1")
    moved = load_settings(broker_url="redis://127.0.0.1:6379/0",
                          hot_url="redis://10.0.0.9:6379/0")
    assert moved.hot_store_name == "eu-west-hot-1"
    assert moved.to_env()["GAMESCHED_HOT_STORE"] == "eu-west-hot-1"


def test_a_hot_stores_name_is_never_empty() -> None:
    """The state log's rows written before stores had names have the empty one."""
    with pytest.raises(ConfigError, match=r"GAMESCHED_HOT_STORE.*at least 1 character"):
        load_settings(hot_store="")


def test_the_textbook_baseline_travels_to_worker_processes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    textbook = load_settings(naive=True, textbook=True)
    env = textbook.to_env()
    assert (env["GAMESCHED_NAIVE"], env["GAMESCHED_TEXTBOOK"]) == ("true", "true")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert load_settings() == textbook
    monkeypatch.setenv("GAMESCHED_TEXTBOOK", "1")  # as a shell sets it
    assert load_settings().textbook is True
    assert load_settings(textbook=False).textbook is False


def test_a_batch_window_maximum_under_its_floor_is_refused_naming_both(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAMESCHED_BATCH_WINDOW_MAX_MS", "10")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert caught.value.variable == "GAMESCHED_BATCH_WINDOW_MAX_MS"
    assert str(caught.value.value) == "10" and "batch_window_min_ms (20)" in caught.value.reason
    monkeypatch.setenv("GAMESCHED_BATCH_WINDOW_MIN_MS", "5")
    assert load_settings().batch_window_max_ms == 10.0


@pytest.mark.parametrize(("variable", "value", "names"), [
    ("GAMESCHED_PHYSICS_NEAR_HZ", "90", "physics_frame_hz (60)"),
    ("GAMESCHED_PHYSICS_FAR_HZ", "30", "physics_near_hz (20)"),
])
def test_detail_rates_out_of_order_are_refused_naming_the_rate_above(
        monkeypatch: pytest.MonkeyPatch, variable: str, value: str, names: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert caught.value.variable == variable and names in caught.value.reason
    monkeypatch.setenv("GAMESCHED_PHYSICS_FRAME_HZ", "120")
    monkeypatch.setenv("GAMESCHED_PHYSICS_NEAR_HZ", "90")
    settings = load_settings()
    assert (settings.physics_frame_hz, settings.physics_near_hz) == (120.0, 90.0)


def test_fleet_records_stay_on_the_broker_when_session_state_has_a_redis_of_its_own() -> None:
    shared = Runtime(load_settings(broker_url="redis://127.0.0.1:6379/0"))
    assert shared.fleet is shared.hot
    apart = Runtime(load_settings(broker_url="redis://127.0.0.1:6379/0",
                                  hot_url="redis://127.0.0.1:6380/0"))
    assert apart.fleet is not apart.hot
    assert isinstance(apart.fleet, RedisHotStore) and isinstance(apart.hot, RedisHotStore)
    assert apart.fleet.client.connection_pool.connection_kwargs["port"] == 6379
    assert apart.hot.client.connection_pool.connection_kwargs["port"] == 6380
