"""The one error hierarchy of gamesched."""

from __future__ import annotations

from typing import Any


class GameschedError(Exception):
    """Base of every error gamesched raises on purpose."""


class ConfigError(GameschedError):
    """A setting is unknown or invalid; raised at start-up, names the variable and value."""

    def __init__(self, variable: str, value: Any, reason: str) -> None:
        self.variable = variable
        self.value = value
        self.reason = reason
        super().__init__(f"{variable}={value!r}: {reason}")


class InvalidRequest(GameschedError):
    """A client call was given bad input; names the field and the value, nothing was enqueued."""

    def __init__(self, field: str, value: Any, reason: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"invalid {field}={_short(value)}: {reason}")


class MemoryBudgetExceeded(GameschedError):
    """A job stopped because its worker process passed its memory budget (the worker's log
    names the job, the memory used and the budget: `app.fleet.memoryguard`)."""

    def __init__(self, *args: object) -> None:  # raised by class, without arguments
        super().__init__(*(args or ("stopped: its worker passed its memory budget",)))


class ServerFull(GameschedError):
    """Every live server instance holds as many sessions as it takes: the session was not
    opened.  Try again after `retry_after_s` seconds."""

    def __init__(self, instances: int, retry_after_s: float) -> None:
        self.instances = instances
        self.retry_after_s = retry_after_s
        super().__init__(f"every live instance ({instances}) is at capacity; "
                         f"retry after {retry_after_s:g} s")


class Fenced(GameschedError):
    """A server instance's write was refused: the instance was taken over (it went silent,
    and its sessions run elsewhere now) and it has not started again since."""

    def __init__(self, instance: str) -> None:
        self.instance = instance
        super().__init__(f"instance {instance} was fenced: its writes are refused until it "
                         "starts again")


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
