"""``python -m app.cli``: the ``gamesched`` command."""

from app.cli.main import main

main()
