"""The ``gamesched`` command line: the typer app and one module per command."""

from app.cli.main import main

__all__ = ["main"]
