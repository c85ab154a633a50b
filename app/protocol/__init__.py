"""The contract between game servers and workers: task and header names, queues, the closed
vocabularies and the Redis key names.  It imports nothing of gamesched but its errors."""
