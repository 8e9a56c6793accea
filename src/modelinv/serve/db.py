"""The serving database: one SQLite file holding the API keys, the query log and the monitor's settings."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from modelinv.errors import ModelinvError

SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    salt BLOB NOT NULL,
    hash BLOB NOT NULL,
    admin INTEGER NOT NULL,
    rate REAL,
    burst INTEGER,
    budget INTEGER,
    created REAL NOT NULL,
    revoked REAL
);
CREATE TABLE IF NOT EXISTS queries (
    key_id TEXT NOT NULL,
    time REAL NOT NULL,
    digest TEXT NOT NULL,
    mean REAL NOT NULL,
    std REAL NOT NULL,
    min REAL NOT NULL,
    max REAL NOT NULL,
    ood REAL,
    nearest REAL,
    label INTEGER NOT NULL,
    confidence REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS queries_by_key ON queries (key_id, time);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def connect(path: Path, create: bool = True) -> sqlite3.Connection:
    """Open (and with `create`, initialise) the serving database; a missing or unreadable file is a one-line error."""
    path = Path(path)
    if not create and not path.is_file():
        raise ModelinvError(f"serving database not found: {path}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, timeout=30, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(SCHEMA)
    except sqlite3.DatabaseError as err:
        raise ModelinvError(f"serving database {path} is unreadable: {err}") from None
    return db


def set_meta(db: sqlite3.Connection, name: str, value: str) -> None:
    with db:
        db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (name, value))
