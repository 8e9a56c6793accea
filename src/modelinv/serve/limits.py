"""Per-key request rate limits (token bucket). A key's total query budget, counted in inputs answered as
the in-process oracles count them (modelinv.oracle), is charged by the query log in the transaction that
logs the inputs (modelinv.serve.querylog), so it holds across restarts and crashes."""

from __future__ import annotations

import time
from typing import Callable

from modelinv.serve.keys import ApiKey


class Limiter:
    """Admits a request for a key, or says why not: each key holds a bucket of `burst` request tokens
    refilled at `rate` per second of `clock` (monotonic seconds). Used from the event loop only."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.tokens: dict[str, tuple[float, float]] = {}

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
