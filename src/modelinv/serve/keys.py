"""API keys: a token is shown once at creation; the database keeps only its id, a random salt and
SHA-256(salt + secret), so a stolen database reveals no usable key."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from modelinv.errors import ModelinvError
from modelinv.serve.db import connect

PREFIX = "mik"


@dataclass(frozen=True)
class ApiKey:
    """A key's public record: its limits (None: unlimited) and whether it is revoked."""

    id: str
    name: str
    admin: bool
    rate: float | None
    """Requests per second, refilled continuously (token bucket)."""
    burst: int | None
    """Requests allowed at once before the rate applies; default: max(1, rate)."""
    budget: int | None
    """Inputs answered over the key's lifetime."""
    created: float
    revoked: float | None


def _hash(salt: bytes, secret: str) -> bytes:
    return hashlib.sha256(salt + secret.encode()).digest()


class KeyStore:
    """The `keys` table of a serving database."""

    COLUMNS = "id, name, admin, rate, burst, budget, created, revoked"

    def __init__(self, path: Path, create: bool = True):
        self.db = connect(path, create)

    def close(self) -> None:
        self.db.close()

    def create(self, name: str, rate: float | None = None, burst: int | None = None, budget: int | None = None, admin: bool = False) -> tuple[str, ApiKey]:
        """A new key: returns the token (shown once, never stored) and its record."""
        for field, value in (("rate", rate), ("burst", burst), ("budget", budget)):
            if value is not None and value <= 0:
                raise ModelinvError(f"invalid '{field}': must be positive, not {value}")
        key_id, secret, salt = secrets.token_hex(6), secrets.token_urlsafe(24), secrets.token_bytes(16)
        record = ApiKey(key_id, name, admin, rate, burst, budget, time.time(), None)
        with self.db:
            self.db.execute(
                "INSERT INTO keys VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key_id, name, salt, _hash(salt, secret), int(admin), rate, burst, budget, record.created, None),
            )
        return f"{PREFIX}_{key_id}_{secret}", record

    def list(self) -> list[ApiKey]:
        return [self._record(row) for row in self.db.execute(f"SELECT {self.COLUMNS} FROM keys ORDER BY created")]

    def revoke(self, key_id: str) -> ApiKey:
        with self.db:
            changed = self.db.execute("UPDATE keys SET revoked = ? WHERE id = ? AND revoked IS NULL", (time.time(), key_id)).rowcount
        if not changed:
            known = {k.id: k for k in self.list()}
            raise ModelinvError(f"key '{key_id}' is already revoked" if key_id in known else f"unknown key id '{key_id}'")
        return next(k for k in self.list() if k.id == key_id)

    def verify(self, token: str | None) -> ApiKey | None:
        """The record of a valid, unrevoked token; None for anything else (read from the database each time,
        so a revocation by `modelinv keys revoke` takes effect at the next request)."""
        prefix, _, rest = (token or "").partition("_")
        key_id, _, secret = rest.partition("_")
        if prefix != PREFIX or not key_id or not secret:
            return None
        row = self.db.execute(f"SELECT salt, hash, {self.COLUMNS} FROM keys WHERE id = ?", (key_id,)).fetchone()
        if row is None or not hmac.compare_digest(_hash(row[0], secret), row[1]):
            return None
        record = self._record(row[2:])
        return None if record.revoked is not None else record

    @staticmethod
    def _record(row) -> ApiKey:
        key_id, name, admin, rate, burst, budget, created, revoked = row
        return ApiKey(key_id, name, bool(admin), rate, burst, budget, created, revoked)
