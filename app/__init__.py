"""gamesched: a durable task scheduler for multiplayer game servers, built on Celery."""

from app.errors import ConfigError, GameschedError, InvalidRequest

__all__ = ["ConfigError", "GameschedError", "InvalidRequest"]
__version__ = "0.1.0"
