"""Celery task modules, one per worker role.  Tasks are thin adapters over app/ services."""
