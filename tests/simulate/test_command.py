"""`gamesched simulate` refuses bad options before it starts anything."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from app.cli.main import cli


@pytest.mark.parametrize(("args", "named"), [
    (["--scenario", "stedy"], "scenario"),
    (["--scenario", "steady", "--faults", "meteor"], "faults"),
    (["--scenario", "steady", "--faults", "partition"], "needs --instances 2"),
    (["--scenario", "steady", "--baseline", "clever"], "baseline"),
    (["--scenario", "steady", "--max-probes", "3"], "give --find-capacity too"),
    (["--scenario", "steady", "--find-capacity", "--max-probes", "0"], "--max-probes"),
])
def test_a_bad_option_is_refused_naming_it(args: list[str], named: str) -> None:
    result = CliRunner().invoke(cli, ["simulate", *args])
    assert result.exit_code == 2
    assert named in result.output


def test_the_scenario_is_required() -> None:
    result = CliRunner().invoke(cli, ["simulate"])
    assert result.exit_code == 2
    assert "--scenario" in result.output
