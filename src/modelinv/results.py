"""The results store: one SQLite file per output directory, one row per finished run, one transaction each.

A run is written only once it has finished (its metrics, config, seed, versions, data hashes, timings
and artifact directory together), so an interrupted sweep keeps every finished run and loses only the
ones in flight; `done()` tells a rerun what to skip."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterable

from modelinv.errors import ModelinvError

DATABASE = "results.sqlite"
SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    attack TEXT NOT NULL,
    defense TEXT,
    defense_params TEXT,
    data TEXT NOT NULL,
    model TEXT NOT NULL,
    seed INTEGER NOT NULL,
    target_test_acc REAL,
    config TEXT NOT NULL,
    row TEXT NOT NULL,
    artifacts TEXT,
    finished REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    name TEXT NOT NULL,
    value REAL,
    PRIMARY KEY (run_id, name)
);
CREATE TABLE IF NOT EXISTS sweeps (
    started REAL NOT NULL,
    command TEXT NOT NULL,
    config TEXT NOT NULL
);
"""
# Result-row fields that are numbers describing the outcome, stored in `metrics` and shown by `results`.
NUMERIC_EXCLUDE = {"seed", "num_targets"}


class ResultsStore:
    """Finished runs of one output directory, in DIR/results.sqlite."""

    def __init__(self, directory: Path, create: bool = True):
        self.directory = Path(directory)
        self.path = self.directory / DATABASE
        if not create and not self.path.is_file():
            raise ModelinvError(f"no results in {self.directory}: {self.path} not found")
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(self.path, timeout=30)
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as err:
            raise ModelinvError(f"results database {self.path} is unreadable: {err}") from None

    def close(self) -> None:
        self.db.close()

    def done(self) -> set[str]:
        """The run_ids already finished."""
        return {r for (r,) in self.db.execute("SELECT run_id FROM runs")}

    def record_sweep(self, command: str, config: Any) -> None:
        with self.db:
            self.db.execute("INSERT INTO sweeps VALUES (?, ?, ?)", (time.time(), command, json.dumps(config)))

    def sweeps(self) -> list[dict[str, Any]]:
        return [{"started": s, "command": c, "config": json.loads(cfg)} for s, c, cfg in self.db.execute("SELECT * FROM sweeps ORDER BY started")]

    def record(self, run_id: str, config: dict[str, Any], row: dict[str, Any], artifacts: Path | None) -> None:
        """Store one finished run (its config as plain JSON data) and its metrics in a single transaction (all or nothing)."""
        numbers = {k: float(v) for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in NUMERIC_EXCLUDE}
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    row["attack"],
                    row.get("defense"),
                    json.dumps(row.get("defense_params"), sort_keys=True) if row.get("defense_params") else None,
                    row["data"],
                    row["model"],
                    row["seed"],
                    row.get("target_test_acc"),
                    json.dumps(config),
                    json.dumps(row, default=str),
                    str(artifacts) if artifacts else None,
                    time.time(),
                ),
            )
            self.db.execute("DELETE FROM metrics WHERE run_id = ?", (run_id,))
            self.db.executemany("INSERT INTO metrics VALUES (?, ?, ?)", [(run_id, k, v) for k, v in numbers.items()])

    def rows(self) -> list[dict[str, Any]]:
        """Every finished run as its result row, with run_id, config, artifact directory and finish time added."""
        out = []
        for run_id, cfg, row, artifacts, finished in self.db.execute("SELECT run_id, config, row, artifacts, finished FROM runs ORDER BY finished"):
            out.append({"run_id": run_id, **json.loads(row), "config": json.loads(cfg), "artifacts": artifacts, "finished": finished})
        return out


def defense_label(row: dict[str, Any]) -> str:
    """'none', or the defense name with its parameters, e.g. 'laplace-noise(scale=0.5)'."""
    if not row.get("defense"):
        return "none"
    params = row.get("defense_params") or {}
    if isinstance(params, str):
        params = json.loads(params)
    return f"{row['defense']}({', '.join(f'{k}={v}' for k, v in sorted(params.items()))})" if params else row["defense"]


def text(value: Any) -> str:
    """A row value as a filter compares it: 'none' for a missing value, else its string form."""
    return "none" if value is None else str(value)


def select(rows: list[dict[str, Any]], where: Iterable[str]) -> list[dict[str, Any]]:
    """The rows matching every FIELD=VALUE filter, compared as `text`; several values of one field match any of them."""
    wanted: dict[str, set[str]] = {}
    for item in where:
        field, sep, value = item.partition("=")
        if not sep or not field.strip():
            raise ModelinvError(f"invalid filter '{item}': expected FIELD=VALUE")
        wanted.setdefault(field.strip(), set()).add(value.strip())
    known = sorted({k for row in rows for k, v in row.items() if not isinstance(v, (dict, list))})
    for field in wanted:
        if rows and field not in known:
            raise ModelinvError(f"unknown field '{field}' to filter on (known: {', '.join(known)})")
    return [row for row in rows if all(text(row.get(field)) in values for field, values in wanted.items())]
