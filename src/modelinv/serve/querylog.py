"""The query log: every answered input as one row (key, time, input digest and summary statistics,
distance to the key's nearest earlier input, out-of-distribution score (above 1: out of distribution,
modelinv.serve.ood), the model's label and confidence) in the serving database.

A batch is committed, and the key's budget charged, in one transaction before its answer is sent: an
answer the client receives is in the log, and a budget can never be overrun, whatever kills the server
(the budget is the count of the key's logged inputs). The database runs in WAL mode with
`synchronous=NORMAL`: a commit survives the process being killed (kill -9); a power loss may undo the
last commits, which `PRAGMA synchronous=FULL` would prevent at the cost of one fsync per request.
"""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from modelinv.serve.db import connect, set_meta
from modelinv.serve.ood import FeatureStats


class QueryLog:
    """Summarises and commits queries; `window` earlier inputs per key are kept in memory to measure how
    close each new input is to one the key already sent (the trace of gradient estimation and of
    iterative refinement, which query small perturbations of one input). Safe to call from several
    threads: commits are serialised by a lock. `clock` gives the wall time written with each row."""

    def __init__(self, path: Path, stats: FeatureStats | None = None, window: int = 256, clock: Callable[[], float] = time.time):
        self.path, self.stats, self.window, self.clock = Path(path), stats, window, clock
        self.db = connect(self.path)
        self.db.isolation_level = None  # transactions are begun explicitly (BEGIN IMMEDIATE) in `record`
        if stats is not None:
            set_meta(self.db, "reference_digest", stats.digest)
        self.recent: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.lock = threading.Lock()

    def used(self, key_id: str) -> int:
        """Inputs answered for `key_id` over the key's lifetime, this run and earlier runs of the server."""
        with self.lock:
            return self._used(key_id)

    def _used(self, key_id: str) -> int:
        return self.db.execute("SELECT COUNT(*) FROM queries WHERE key_id = ?", (key_id,)).fetchone()[0]

    def nearest(self, key_id: str, flat: np.ndarray) -> np.ndarray:
        """Per input (a float32 row of `flat`), the RMS distance to the closest earlier input of the key, this
        batch's included; repeats (RMS distance below 1e-3, under one 8-bit grey level) are skipped, so
        retries are not perturbations. NaN when there is none."""
        earlier, earlier_sq = self.recent.get(key_id, (flat[:0], np.zeros(0, np.float32)))
        pool, sq = np.concatenate([earlier, flat]), np.concatenate([earlier_sq, (flat**2).sum(1)])
        dist = np.sqrt(np.maximum(sq[len(earlier) :, None] + sq[None, :] - 2 * flat @ pool.T, 0) / flat.shape[1])
        later = np.arange(len(pool))[None, :] >= (len(earlier) + np.arange(len(flat)))[:, None]
        dist[later | (dist < 1e-3)] = np.inf
        self.recent[key_id] = (pool[-self.window :], sq[-self.window :])
        near = dist.min(1, initial=np.inf)
        return np.where(np.isinf(near), np.nan, near)

    def record(self, key_id: str, x: torch.Tensor, logits: torch.Tensor, emb: torch.Tensor, budget: int | None = None) -> bool:
        """Commit one row per input of the batch `x`, with the model's `logits` and penultimate features `emb`,
        charging the inputs to the key's lifetime `budget` in the same transaction. False, with nothing
        logged, when the batch would exceed the budget; True once the rows are committed."""
        flat = x.flatten(1).numpy()
        confidence, labels = logits.softmax(1).max(1)
        ood = self.stats.score(flat, emb.numpy()).tolist() if self.stats is not None else [None] * len(flat)
        summary = np.stack([flat.mean(1), flat.std(1), flat.min(1), flat.max(1)], 1).tolist()
        digests = [hashlib.sha256(row.tobytes()).hexdigest()[:32] for row in flat]
        confidence, labels = confidence.tolist(), labels.tolist()
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")  # the write lock first: no other writer charges the key meanwhile
            try:
                if budget is not None and self._used(key_id) + len(flat) > budget:
                    self.db.execute("ROLLBACK")
                    return False
                near = [None if d != d else d for d in self.nearest(key_id, flat).tolist()]
                now = self.clock()
                self.db.executemany(
                    "INSERT INTO queries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(key_id, now, digests[i], *summary[i], ood[i], near[i], labels[i], confidence[i]) for i in range(len(flat))],
                )
                self.db.execute("COMMIT")
            except BaseException:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise
        return True

    def close(self) -> None:
        """Close the database connection (every answered batch is already committed)."""
        with self.lock:
            self.db.close()
