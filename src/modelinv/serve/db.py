"""The serving database: one SQLite file holding the API keys, the query log and the monitor's settings;
and `ProcessLock`, which serialises writers among threads and processes."""

from __future__ import annotations

import os
import sqlite3
import threading
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


class ProcessLock:
    """A lock among the threads of this process and, with `path`, among processes (an exclusive `flock` on that
    file, released by the kernel when its holder dies, even by kill -9). Waiting for it sleeps in the kernel until
    the holder releases it, where SQLite's busy handler would poll with sleeps of 1 to 100 ms."""

    def __init__(self, path: Path | None = None):
        self.thread = threading.Lock()
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600) if path is not None else None

    def __enter__(self) -> "ProcessLock":
        self.thread.acquire()
        if self.fd is not None:
            import fcntl  # POSIX only, as are several worker processes

            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX)
            except BaseException:
                self.thread.release()
                raise
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            import fcntl

            fcntl.flock(self.fd, fcntl.LOCK_UN)
        self.thread.release()

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
