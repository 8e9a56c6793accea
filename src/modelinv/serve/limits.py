"""Per-key request rate limits (token bucket). A key's total query budget, counted in inputs answered as
the in-process oracles count them (modelinv.oracle), is charged by the query log in the transaction that
logs the inputs (modelinv.serve.querylog), so it holds across restarts, crashes and worker processes.

One process keeps its buckets in memory (`Limiter`); the worker processes of one server
(modelinv.serve.workers) share theirs (`SharedLimiter`, in the server's shared state directory), so a key
gets its rate across all workers together, not once per worker. Buckets start full when a server starts."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Callable

from modelinv.serve.db import ProcessLock
from modelinv.serve.keys import ApiKey


def spend(key: ApiKey, bucket: tuple[float, float] | None, now: float) -> tuple[bool, tuple[float, float]]:
    """Whether `key` may send a request at `now`, and its bucket (tokens, time) after: the bucket holds at most
    `burst` tokens (default max(1, rate)), refilled at `rate` per second; a request spends one."""
    burst = float(key.burst or max(1.0, key.rate))
    tokens, last = bucket if bucket is not None else (burst, now)
    tokens = min(burst, tokens + max(0.0, now - last) * key.rate)  # a clock that went back refills nothing
    if tokens < 1.0:
        return False, (tokens, now)
    return True, (tokens - 1.0, now)


def wait(key: ApiKey, bucket: tuple[float, float] | None) -> float:
    """Seconds until `key` has a request token again, from its bucket as last written."""
    tokens = bucket[0] if bucket is not None else 0.0
    return max(0.0, (1.0 - tokens) / key.rate) if key.rate else 0.0


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
        admitted, self.tokens[key.id] = spend(key, self.tokens.get(key.id), self.clock())
        return admitted

    def retry_after(self, key: ApiKey) -> float:
        """Seconds until `key` has a request token again."""
        return wait(key, self.tokens.get(key.id))


class SharedLimiter(Limiter):
    """A `Limiter` whose buckets live in the SQLite file `path`, shared by the processes that open it: a bucket
    is read and written in one write transaction, serialised among processes by an exclusive `flock`
    (modelinv.serve.db.ProcessLock), so the requests of a key admitted by all of them together keep to
    its rate and burst. `clock` must be one clock for all of them (the default, `time.monotonic`, is the
    system's monotonic clock on Linux and macOS)."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.monotonic):
        super().__init__(clock)
        self.db = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=OFF")  # the buckets start full after a restart: nothing to keep
        self.db.execute("CREATE TABLE IF NOT EXISTS buckets (key_id TEXT PRIMARY KEY, tokens REAL NOT NULL, time REAL NOT NULL)")
        self.lock = ProcessLock(Path(f"{path}.lock"))

    def _bucket(self, key_id: str) -> tuple[float, float] | None:
        return self.db.execute("SELECT tokens, time FROM buckets WHERE key_id = ?", (key_id,)).fetchone()

    def take_request(self, key: ApiKey) -> bool:
        if key.rate is None:
            return True
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                admitted, bucket = spend(key, self._bucket(key.id), self.clock())
                self.db.execute("INSERT OR REPLACE INTO buckets VALUES (?, ?, ?)", (key.id, *bucket))
                self.db.execute("COMMIT")
            except BaseException:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise
        return admitted

    def retry_after(self, key: ApiKey) -> float:
        with self.lock:
            return wait(key, self._bucket(key.id))

    def close(self) -> None:
        with self.lock:
            self.db.close()
        self.lock.close()
