"""Validated request shapes of the ledger.  Bad input raises InvalidRequest naming the
field and the value, before any SQL runs."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field, StrictInt

from app.errors import InvalidRequest
from app.ledger.models import KEY_MAX, REASON_MAX
from app.validation import Id, StrictRequest

__all__ = ["Purchase", "Refund", "Reward", "check_currency"]

MAX_AMOUNT = 10**9
Key = Field(min_length=1, max_length=KEY_MAX)


class Purchase(StrictRequest):
    """A purchase: the player pays `price` of `currency` for `sku`."""

    player_id: str = Id
    sku: str = Id
    price: StrictInt = Field(gt=0, le=10**9)
    currency: str = Field(min_length=1, max_length=16)
    idempotency_key: str = Field(min_length=1, max_length=128)


class Reward(StrictRequest):
    """A reward: the house credits `amount` of `currency` to the player."""

    player_id: str = Id
    amount: StrictInt = Field(gt=0, le=MAX_AMOUNT)
    currency: str = Field(min_length=1, max_length=16)
    idempotency_key: str = Key
    reason: str = Field(default="reward", min_length=1, max_length=REASON_MAX)


class Refund(StrictRequest):
    """A refund of a committed purchase, named by the purchase's idempotency key."""

    player_id: str = Id
    purchase_key: str = Key
    idempotency_key: str = Key
    reason: str = Field(default="refund", min_length=1, max_length=REASON_MAX)


def check_currency(currency: str, allowed: Sequence[str]) -> None:
    """Raise InvalidRequest unless `currency` is one of the configured currencies."""
    if currency not in allowed:
        raise InvalidRequest("currency", currency, f"expected one of {', '.join(allowed)}")
