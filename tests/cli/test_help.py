"""``gamesched --help`` reads as written: each command's description one paragraph."""

from __future__ import annotations

from typer.testing import CliRunner

from app.cli.main import cli


def test_help_joins_each_command_description_into_one_paragraph() -> None:
    """A docstring's line breaks do not break the command list mid-sentence: on a wide
    terminal each description is one line."""
    result = CliRunner().invoke(cli, ["--help"], env={"COLUMNS": "220"}, terminal_width=220)
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert any("status" in line and "Show queue depths" in line
               and "controller's last decision." in line for line in lines), result.output
    assert any("audit" in line and "Verify the ledger" in line
               and "Exits 1 on any violation." in line for line in lines), result.output
