"""``python -m tests.launch <gamesched arguments>``: gamesched's command line with the
test-only tasks loaded (a worker started so keeps everything ``gamesched worker`` does,
its memory guard and its start again as a fresh process included)."""

from __future__ import annotations

import tests.tasks  # noqa: F401  (registers the test tasks with every app made after)
from app.cli.main import main

if __name__ == "__main__":
    main()
