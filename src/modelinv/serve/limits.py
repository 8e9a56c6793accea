"""Per-key access limits: a request rate (token bucket) and a total query budget, counted in inputs
answered as the in-process oracles count them (modelinv.oracle)."""

from __future__ import annotations

import time
from typing import Callable

from modelinv.serve.keys import ApiKey


class Limiter:
    """Admits a request of `n` inputs for a key, or says why not.

    Each key holds a bucket of `burst` request tokens refilled at `rate` per second; the budget counts
    every input answered since the key was created, starting from what the query log already holds
    (`used(key_id)`), so restarting the server does not reset it.
    """

    def __init__(self, used: Callable[[str], int], clock: Callable[[], float] = time.monotonic):
        self.used, self.clock = used, clock
        self.tokens: dict[str, tuple[float, float]] = {}
        self.spent: dict[str, int] = {}

    def take_request(self, key: ApiKey) -> bool:
        """Spend one request token of `key`; False when its rate limit is exceeded."""
        if key.rate is None:
            return True
        burst = float(key.burst or max(1.0, key.rate))
        now = self.clock()
        tokens, last = self.tokens.get(key.id, (burst, now))
        tokens = min(burst, tokens + (now - last) * key.rate)
        if tokens < 1.0:
            self.tokens[key.id] = (tokens, now)
            return False
        self.tokens[key.id] = (tokens - 1.0, now)
        return True

    def retry_after(self, key: ApiKey) -> float:
        """Seconds until `key` has a request token again."""
        tokens, _ = self.tokens.get(key.id, (0.0, 0.0))
        return max(0.0, (1.0 - tokens) / key.rate) if key.rate else 0.0

    def charge(self, key: ApiKey, n: int) -> bool:
        """Charge `n` inputs to `key`'s budget; False (and nothing charged) when it would be exceeded."""
        if key.id not in self.spent:
            self.spent[key.id] = self.used(key.id)
        if key.budget is not None and self.spent[key.id] + n > key.budget:
            return False
        self.spent[key.id] += n
        return True
