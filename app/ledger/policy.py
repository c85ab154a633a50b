"""Timing policy of the ledger: task retries, sweeper re-sends and the stale alarm.

Retries and re-sends back off exponentially with full jitter so that a database or broker
outage is not met by a synchronised flood when it ends.
"""

from __future__ import annotations

import random
from datetime import timedelta

RETRY_BASE_S = 0.05  # first retry of a failed apply after up to 50 ms
RETRY_MAX_S = 5.0  # retries never wait longer than this
MAX_RETRIES = 100  # about eight minutes of retries; after that the sweeper re-sends

RESEND_AFTER = timedelta(seconds=1)  # an intent still pending this long is re-sent
RESEND_MAX = timedelta(seconds=5)  # re-sends of one intent back off up to this interval
APPLY_BATCH_MAX = 200  # intents per apply_batch message (client sends and sweeper re-sends)
SWEEP_BATCH = 1000  # at most this many re-sends per sweep, fewer when the queue holds work
STALE_AFTER = timedelta(seconds=2)  # pending longer than this raises the alarm and fails audit


def retry_delay(retries: int, rng: random.Random | None = None) -> float:
    """Seconds before retry number `retries + 1`: full jitter over an exponential cap."""
    cap = min(RETRY_MAX_S, RETRY_BASE_S * 2.0 ** min(retries, 32))
    return (rng or random).uniform(0.0, cap)


def resend_interval(resends: int) -> timedelta:
    """How long to wait before re-sending an intent already re-sent `resends` times."""
    return min(RESEND_MAX, RESEND_AFTER * (1 << min(resends, 16)))
