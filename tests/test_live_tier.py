"""The live tier is what a test's fixtures reach: tests/conftest.py marks a test `live` when
it needs a real service, ``-m "not live"`` leaves it out, and a missing service skips it
locally (saying why) and fails it under CI=true.

Each test runs pytest on a small suite of its own whose conftest is tests/conftest.py; no
service is reached (the live tests are deselected, or face closed ports)."""

from __future__ import annotations

import socket

import pytest

from tests import services

INI = """
[pytest]
addopts = -p no:celery -p no:cacheprovider
markers =
    live: needs a real service
    worker_role(role): the in-process worker's role
"""

SUITE = '''
import pytest


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request):
    if request.param == "postgresql":
        return request.getfixturevalue("postgres_url")
    return "sqlite://"


@pytest.fixture
def settings(live_settings):
    return live_settings


def test_plain():
    pass


def test_on_sqlite(sqlite_url):
    pass


def test_on_redis(redis_client):
    pass


def test_on_postgres(postgres_url):
    pass


def test_on_settings_of_its_own(settings):
    pass


def test_on_a_private_redis(redis_server_binary):
    pass


def test_with_an_in_process_worker(celery_worker):
    pass


def test_on_each_database(database):
    pass


@pytest.mark.parametrize("name", ["redis", "postgresql"])
def test_with_service_names_as_data(name):
    pass
'''


def _suite(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makeconftest("from tests.conftest import *  # noqa: F403\n")  # as a conftest
    pytester.makepyfile(test_suite=SUITE)


def _names(reports: list[pytest.TestReport]) -> list[str]:
    return sorted(report.nodeid.rsplit("::", 1)[-1] for report in reports)


def test_not_live_runs_exactly_the_tests_whose_fixtures_reach_no_service(
        pytester: pytest.Pytester) -> None:
    _suite(pytester)
    run = pytester.inline_run("-m", "not live")
    passed, skipped, failed = run.listoutcomes()
    assert (skipped, failed) == ([], [])
    assert _names(passed) == [  # a parametrize value naming a service is only data
        "test_on_each_database[sqlite]", "test_on_sqlite", "test_plain",
        "test_with_service_names_as_data[postgresql]", "test_with_service_names_as_data[redis]",
    ]
    deselected = sorted(item.name for call in run.getcalls("pytest_deselected")
                        for item in call.items)
    assert deselected == [
        "test_on_a_private_redis",
        "test_on_each_database[postgresql]",  # the fixture's param names the service
        "test_on_postgres",
        "test_on_redis",
        "test_on_settings_of_its_own",  # through a fixture that needs live_settings
        "test_with_an_in_process_worker",
    ]


@pytest.fixture
def services_missing(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Redis and PostgreSQL on closed local ports, and no redis-server on PATH."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    redis_url = f"redis://127.0.0.1:{port}/0"
    postgres_url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/test"
    monkeypatch.setattr(services, "REDIS_URL", redis_url)
    monkeypatch.setattr(services, "POSTGRES_URL", postgres_url)
    monkeypatch.setenv("PATH", "")
    return {"test_on_redis": f"Redis at {redis_url} is not reachable",
            "test_on_postgres": f"PostgreSQL at {postgres_url} is not reachable",
            "test_on_a_private_redis": "redis-server is not reachable"}


@pytest.mark.parametrize("ci", ["", "true"])
def test_a_missing_service_skips_its_tests_saying_why_and_fails_them_under_ci(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
        services_missing: dict[str, str], ci: str) -> None:
    monkeypatch.setenv("CI", ci)
    _suite(pytester)
    run = pytester.inline_run("-k", " or ".join(services_missing))
    passed, skipped, failed = run.listoutcomes()
    assert passed == []
    if ci:
        assert (_names(skipped), _names(failed)) == ([], sorted(services_missing))
        for report in failed:
            assert "CI=true requires it" in report.longreprtext
    else:
        assert (_names(skipped), _names(failed)) == (sorted(services_missing), [])
        for report in skipped:
            assert isinstance(report.longrepr, tuple)
            reason = report.longrepr[2]
            assert services_missing[report.nodeid.rsplit("::", 1)[-1]] in reason, reason
