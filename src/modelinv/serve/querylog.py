"""The query log: every answered input as one row (key, time, input digest and summary statistics,
distance to the key's nearest earlier input, out-of-distribution score (above 1: out of distribution,
modelinv.serve.ood), the model's label and confidence) in the serving database.

A batch is committed, and the key's budget charged, in one transaction before its answer is sent: an
answer the client receives is in the log, and a budget can never be overrun, whatever kills the server
(the budget is the count of the key's logged inputs). The transaction holds the database's write lock
(`BEGIN IMMEDIATE`), so this holds across the processes of a server with several workers too. The
database runs in WAL mode with `synchronous=NORMAL`: a commit survives the process being killed
(kill -9); a power loss may undo the last commits, which `PRAGMA synchronous=FULL` would prevent at the
cost of one fsync per request.

The distance to the nearest earlier input is measured against the key's last `window` inputs. One process
keeps them in memory. The worker processes of one server (modelinv.serve.workers) share them through a
`shared` state directory: each keeps its copy in memory and, inside the logging transaction, first reads
the inputs the other workers logged since (from `recent.sqlite` there, which holds the last inputs of each
key only while the server runs), so every worker measures against the same last `window` inputs, in commit
order, as one process would.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from modelinv.serve.db import ProcessLock, connect, set_meta

RECENT_SCHEMA = """
CREATE TABLE IF NOT EXISTS live.recent (seq INTEGER PRIMARY KEY, key_id TEXT NOT NULL, input BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS live.recent_by_key ON recent (key_id, seq);
"""


@dataclass
class Recent:
    """A key's last `window` inputs (flattened float32 rows) and their squared norms, as a ring: the order of the
    rows does not matter to a nearest-neighbour distance, so a new input overwrites the oldest in place."""

    window: int
    inputs: np.ndarray
    sq: np.ndarray
    size: int = 0
    next: int = 0
    seen: int = 0
    """The highest `seq` of the shared table this copy holds (several workers only)."""
    unpruned: int = 0
    """Inputs this process wrote to the shared table since it last pruned the key's rows there."""

    @classmethod
    def empty(cls, window: int, dim: int) -> "Recent":
        return cls(window, np.zeros((0, dim), np.float32), np.zeros(0, np.float32))

    @property
    def rows(self) -> tuple[np.ndarray, np.ndarray]:
        return self.inputs[: self.size], self.sq[: self.size]

    def add(self, flat: np.ndarray, sq: np.ndarray) -> None:
        """Append rows (in the order they were sent), dropping the oldest beyond the window."""
        if len(flat) >= self.window:
            self.inputs, self.sq = flat[-self.window :].copy(), sq[-self.window :].copy()
            self.size, self.next = self.window, 0
            return
        if self.size + len(flat) > len(self.inputs) and len(self.inputs) < self.window:  # grow (doubling) up to the window
            capacity = min(self.window, max(2 * len(self.inputs), self.size + len(flat), 16))
            inputs, squares = np.zeros((capacity, flat.shape[1]), np.float32), np.zeros(capacity, np.float32)
            inputs[: self.size], squares[: self.size] = self.rows
            self.inputs, self.sq, self.next = inputs, squares, self.size
        where = (self.next + np.arange(len(flat))) % len(self.inputs)
        self.inputs[where], self.sq[where] = flat, sq
        self.next = int(where[-1] + 1) % len(self.inputs)
        self.size = min(len(self.inputs), self.size + len(flat))


class QueryLog:
    """Summarises and commits queries; the last `window` inputs of each key are kept to measure how close each
    new input is to one the key already sent (the trace of gradient estimation and of iterative refinement,
    which query small perturbations of one input). Safe to call from several threads; with `shared` (the state
    directory of a server's worker processes, modelinv.serve.workers) from several processes, which then share
    the window. `clock` gives the wall time written with each row."""

    def __init__(self, path: Path, stats=None, window: int = 256, clock: Callable[[], float] = time.time, shared: Path | None = None):
        self.path, self.stats, self.window, self.clock = Path(path), stats, window, clock
        self.shared = Path(shared) if shared is not None else None
        self.db = connect(self.path)
        self.db.isolation_level = None  # transactions are begun explicitly (BEGIN IMMEDIATE) in `record`
        if stats is not None:
            set_meta(self.db, "reference_digest", stats.digest)
        if self.shared is not None:
            self.db.execute("ATTACH DATABASE ? AS live", (str(self.shared / "recent.sqlite"),))
            self.db.execute("PRAGMA live.journal_mode=WAL")
            self.db.execute("PRAGMA live.synchronous=OFF")  # the window is rebuilt empty after a crash: nothing to keep
            self.db.executescript(RECENT_SCHEMA)
        self.recent: dict[str, Recent] = {}
        self.lock = threading.Lock()  # the connection, among this process's threads
        self.writer = ProcessLock(self.shared / "log.lock" if self.shared is not None else None)

    def used(self, key_id: str) -> int:
        """Inputs answered for `key_id` over the key's lifetime, this run and earlier runs of the server."""
        with self.lock:
            return self._used(key_id)

    def _used(self, key_id: str) -> int:
        return self.db.execute("SELECT COUNT(*) FROM queries WHERE key_id = ?", (key_id,)).fetchone()[0]

    def nearest(self, key_id: str, flat: np.ndarray) -> np.ndarray:
        """Per input (a float32 row of `flat`), the RMS distance to the closest earlier input of the key, this
        batch's included; repeats (RMS distance below 1e-3, under one 8-bit grey level) are skipped, so
        retries are not perturbations. NaN when there is none. The batch then joins the key's window."""
        recent = self.recent.get(key_id) or self.recent.setdefault(key_id, Recent.empty(self.window, flat.shape[1]))
        if self.shared is not None:
            self._catch_up(key_id, recent)
        earlier, earlier_sq = recent.rows
        sq = np.einsum("ij,ij->i", flat, flat)
        to_earlier = sq[:, None] + earlier_sq[None, :] - 2 * flat @ earlier.T
        within = sq[:, None] + sq[None, :] - 2 * flat @ flat.T
        order = np.arange(len(flat))
        within[order[:, None] <= order[None, :]] = np.inf  # only inputs sent before, not the input itself
        dist = np.sqrt(np.maximum(np.concatenate([to_earlier, within], 1), 0) / flat.shape[1])
        dist[dist < 1e-3] = np.inf
        recent.add(flat, sq)
        near = dist.min(1, initial=np.inf)
        return np.where(np.isinf(near), np.nan, near)

    def _catch_up(self, key_id: str, recent: Recent) -> None:
        """Add the key's inputs other workers logged since this copy was last brought up to date (the last
        `window` of them at most: older ones would leave the window anyway)."""
        rows = self.db.execute(
            "SELECT seq, input FROM live.recent WHERE key_id = ? AND seq > ? ORDER BY seq DESC LIMIT ?", (key_id, recent.seen, self.window)
        ).fetchall()
        if rows:
            flat = np.stack([np.frombuffer(blob, np.float32) for _, blob in reversed(rows)])
            recent.add(flat, np.einsum("ij,ij->i", flat, flat))
            recent.seen = rows[0][0]

    def _share(self, key_id: str, flat: np.ndarray) -> None:
        """Write the batch's inputs (its last `window`) to the shared table for the other workers; prune the key's
        rows there to its last `window` every `window` inputs written."""
        recent = self.recent[key_id]
        top = self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM live.recent").fetchone()[0]
        rows = flat[-self.window :]
        self.db.executemany("INSERT INTO live.recent VALUES (?, ?, ?)", [(top + 1 + i, key_id, row.tobytes()) for i, row in enumerate(rows)])
        recent.seen = top + len(rows)
        recent.unpruned += len(rows)
        if recent.unpruned >= self.window:
            self.db.execute(
                "DELETE FROM live.recent WHERE key_id = ? AND seq < (SELECT seq FROM live.recent WHERE key_id = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)",
                (key_id, key_id, self.window - 1),
            )
            recent.unpruned = 0

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
        with self.lock, self.writer:
            self.db.execute("BEGIN IMMEDIATE")  # the write lock first: no other writer charges the key meanwhile
            try:
                if budget is not None and self._used(key_id) + len(flat) > budget:
                    self.db.execute("ROLLBACK")
                    return False
                near = [None if d != d else d for d in self.nearest(key_id, flat).tolist()]
                if self.shared is not None:
                    self._share(key_id, flat)
                now = self.clock()
                self.db.executemany(
                    "INSERT INTO queries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(key_id, now, digests[i], *summary[i], ood[i], near[i], labels[i], confidence[i]) for i in range(len(flat))],
                )
                self.db.execute("COMMIT")
            except BaseException:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                self.recent.pop(key_id, None)  # the window may hold inputs that were not logged: rebuilt from the next ones
                raise
        return True

    def close(self) -> None:
        """Close the database connection (every answered batch is already committed)."""
        with self.lock:
            self.db.close()
            self.writer.close()
