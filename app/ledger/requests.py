"""Validated request shapes of the ledger.  Bad input raises InvalidRequest naming the
field and the value, before any SQL runs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from app.errors import InvalidRequest
from app.ledger.models import KEY_MAX, REASON_MAX
from app.requests import Id, Purchase

__all__ = ["Purchase", "Refund", "Reward", "check_currency", "validate"]

MAX_AMOUNT = 10**9
Key = Field(min_length=1, max_length=KEY_MAX)


class _LedgerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Reward(_LedgerRequest):
    """A reward: the house credits `amount` of `currency` to the player."""

    player_id: str = Id
    amount: StrictInt = Field(gt=0, le=MAX_AMOUNT)
    currency: str = Field(min_length=1, max_length=16)
    idempotency_key: str = Key
    reason: str = Field(default="reward", min_length=1, max_length=REASON_MAX)


class Refund(_LedgerRequest):
    """A refund of a committed purchase, named by the purchase's idempotency key."""

    player_id: str = Id
    purchase_key: str = Key
    idempotency_key: str = Key
    reason: str = Field(default="refund", min_length=1, max_length=REASON_MAX)


M = TypeVar("M", bound=BaseModel)


def validate(model: type[M], data: dict[str, Any]) -> M:
    """Build `model` from `data`, or raise InvalidRequest naming the first bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"]) or model.__name__
        raise InvalidRequest(field, error.get("input"), error["msg"]) from None


def check_currency(currency: str, allowed: Sequence[str]) -> None:
    """Raise InvalidRequest unless `currency` is one of the configured currencies."""
    if currency not in allowed:
        raise InvalidRequest("currency", currency, f"expected one of {', '.join(allowed)}")
