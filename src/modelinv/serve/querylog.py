"""The query log: every answered input as one row (key, time, input digest and summary statistics,
distance to the key's nearest earlier input, out-of-distribution score (above 1: out of distribution,
modelinv.serve.ood), the model's label and confidence), written to the serving database by a
background thread, one transaction per `commit_every` seconds."""

from __future__ import annotations

import hashlib
import queue
import threading
import time
from pathlib import Path

import numpy as np
import torch

from modelinv.serve.db import connect, set_meta
from modelinv.serve.ood import FeatureStats


class QueryLog:
    """Summarises and records queries; `window` earlier inputs per key are kept in memory to measure how
    close each new input is to one the key already sent (the trace of gradient estimation and of
    iterative refinement, which query small perturbations of one input)."""

    def __init__(self, path: Path, stats: FeatureStats | None = None, window: int = 256, commit_every: float = 0.2):
        self.path, self.stats, self.window, self.commit_every = Path(path), stats, window, commit_every
        self.db = connect(self.path)
        if stats is not None:
            set_meta(self.db, "reference_digest", stats.digest)
        self.recent: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.pending: queue.Queue = queue.Queue()
        self.writer = threading.Thread(target=self._write, name="modelinv-querylog", daemon=True)
        self.writer.start()

    def used(self, key_id: str) -> int:
        """Inputs answered for `key_id` by earlier runs of the server (this run's are counted by the limiter)."""
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

    def record(self, key_id: str, x: torch.Tensor, logits: torch.Tensor, emb: torch.Tensor) -> None:
        """Queue one row per input of the batch `x`, with the model's `logits` and penultimate features `emb`."""
        now = time.time()
        flat = x.flatten(1).numpy()
        probs = logits.softmax(1)
        ood = self.stats.score(flat, emb.numpy()).tolist() if self.stats is not None else [None] * len(flat)
        near = [None if d != d else d for d in self.nearest(key_id, flat).tolist()]
        summary = np.stack([flat.mean(1), flat.std(1), flat.min(1), flat.max(1)], 1).tolist()
        confidence, labels = probs.max(1)
        confidence, labels = confidence.tolist(), labels.tolist()
        self.pending.put(
            [
                (key_id, now, hashlib.sha256(flat[i].tobytes()).hexdigest()[:32], *summary[i], ood[i], near[i], labels[i], confidence[i])
                for i in range(len(flat))
            ]
        )

    def flush(self) -> None:
        """Wait until every queued row is in the database."""
        self.pending.join()

    def close(self) -> None:
        self.flush()
        self.pending.put(None)
        self.writer.join(timeout=10)
        self.db.close()

    def _write(self) -> None:
        db = connect(self.path)
        while True:
            batch = [self.pending.get()]
            time.sleep(self.commit_every)  # gather what arrives meanwhile into one transaction
            while not self.pending.empty():
                batch.append(self.pending.get())
            rows = [row for item in batch if item is not None for row in item]
            if rows:
                with db:
                    db.executemany("INSERT INTO queries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            for _ in batch:
                self.pending.task_done()
            if None in batch:
                db.close()
                return
