"""The app instance for Celery's own CLI: ``celery -A app.celery_entry worker -Q player``.

This module exists only to be named by ``-A``; gamesched's code uses the factory.
"""

from app.celery_app import create_app

celery = create_app()
