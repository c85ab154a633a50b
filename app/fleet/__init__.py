"""Running workers: roles, worker command lines, fleets of processes, the memory guard."""
