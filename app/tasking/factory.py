"""The Celery app factory.  Importing this module creates nothing."""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import worker_process_init

import celeryconfig
from app.settings import Settings, get_settings
from app.tasking.publish import Publisher, publisher_for
from app.tasking.runtime import Runtime
from app.tasking.transport import AMQP_NAME


class GameschedCelery(Celery):  # type: ignore[misc]
    """A Celery app that carries the gamesched runtime for its tasks."""

    amqp_cls = AMQP_NAME  # reconnects sooner after the broker went away
    runtime: Runtime
    publisher: Publisher  # how every gamesched message is sent (`app.tasking.publish`)


def create_app(settings: Settings | None = None, **overrides: Any) -> GameschedCelery:
    """Build a Celery app from `settings` (the environment's when None)."""
    settings = settings or get_settings()
    app = GameschedCelery("gamesched", set_as_current=False)
    app.runtime = Runtime(settings)
    app.publisher = publisher_for(app, settings)
    app.conf.update(celeryconfig.build(settings))
    app.conf.update(overrides)
    _reset_runtime_after_fork(app)
    return app


def _reset_runtime_after_fork(app: GameschedCelery) -> None:
    def _after_fork(**_: Any) -> None:
        app.runtime.after_fork()

    worker_process_init.connect(_after_fork, weak=False)
