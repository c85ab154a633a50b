"""The app for Celery's tools that watch a fleet without running it: Flower, and
``celery inspect`` / ``celery control``.

    celery -A app.tasking.tools flower --port=5555
    celery -A app.tasking.tools inspect ping

It is gamesched's configuration (the queues, and the broker's transport options: ten
priority steps), on kombu's own Redis transport instead of
gamesched's (`app.tasking.transport`, which changes how workers reconnect, acknowledge and
publish, nothing a watcher needs).  So the broker URL keeps its ``redis://`` scheme, the
only one for which Flower reads queue lengths, and those lengths sum every priority step.
A client given only the broker URL (``celery --broker=redis://...``) reaches the workers
too (the fleet keeps kombu's separator in binding and list names), but knows only kombu's
four default priority steps: Flower started so undercounts queue lengths.
"""

from __future__ import annotations

from app.settings import Settings
from app.tasking.factory import GameschedCelery, create_app


def tools_app(settings: Settings | None = None) -> GameschedCelery:
    """gamesched's app on kombu's own Redis transport (the environment's settings when
    None)."""
    return create_app(settings, broker_transport=None)


celery = tools_app()
