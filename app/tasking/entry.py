"""The app instance for Celery's own CLI: ``celery -A app.tasking.entry worker -Q player``.

This module exists only to be named by ``-A``; gamesched's code uses the factory.
"""

from app.tasking.factory import create_app

celery = create_app()
