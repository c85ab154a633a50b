"""The Celery glue: the app factory, the task base, the worker runtime, the one publisher,
the Redis transport and broker inspection.  Importing it creates nothing."""
