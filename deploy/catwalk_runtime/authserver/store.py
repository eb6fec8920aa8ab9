"""Registered clients, authorization codes and refresh-token families, in sqlite.

A file under ``CATWALK_AS_STATE`` (the stack mounts a volume there) survives restarts; without it the
database lives in memory and a restart forgets every client and refresh token (clients register again,
the operator consents again). Codes and refresh tokens are stored as SHA-256 hashes only, so the database
holds nothing a client could present. One connection, used under a lock: the server is one small process.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

from .models import AuthorizationCode, Client, RefreshToken

DB_NAME = "authserver.sqlite3"
MAX_CLIENTS = 1000  # registrations are open (RFC 7591): past this the least recently used client goes

SCHEMA = """
CREATE TABLE IF NOT EXISTS clients (client_id TEXT PRIMARY KEY, metadata TEXT NOT NULL, last_used REAL NOT NULL);
CREATE TABLE IF NOT EXISTS codes (code_hash TEXT PRIMARY KEY, client_id TEXT NOT NULL, redirect_uri TEXT NOT NULL,
    scope TEXT NOT NULL, resource TEXT NOT NULL, code_challenge TEXT NOT NULL, code_challenge_method TEXT NOT NULL,
    expires_at REAL NOT NULL, used INTEGER NOT NULL DEFAULT 0, family TEXT);
CREATE TABLE IF NOT EXISTS families (family TEXT PRIMARY KEY, revoked INTEGER NOT NULL DEFAULT 0,
    expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS refresh_tokens (token_hash TEXT PRIMARY KEY, family TEXT NOT NULL, client_id TEXT NOT NULL,
    scope TEXT NOT NULL, resource TEXT NOT NULL, subject TEXT NOT NULL, expires_at REAL NOT NULL,
    used INTEGER NOT NULL DEFAULT 0);
"""
# A used code is kept this long past its expiry, so a replay still finds it and revokes what it issued.
USED_CODE_KEEP_S = 600.0


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class Store:
    def __init__(self, state_dir: str | None, clock: Callable[[], float] = time.time) -> None:
        if state_dir is not None:
            os.makedirs(state_dir, mode=0o700, exist_ok=True)
            path = os.path.join(state_dir, DB_NAME)
        else:
            path = ":memory:"
        self.path = path
        self.clock = clock
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        if state_dir is not None:
            os.chmod(path, 0o600)
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)
        self.lock = threading.RLock()

    def close(self) -> None:
        self._db.close()

    def _one(self, sql: str, *args: Any) -> sqlite3.Row | None:
        self._db.row_factory = sqlite3.Row
        return self._db.execute(sql, args).fetchone()

    # --- clients --------------------------------------------------------------------------------------------

    def add_client(self, client_id: str, metadata: dict[str, Any]) -> Client:
        with self.lock:
            count = self._db.execute("SELECT COUNT(*) FROM clients").fetchone()[0]
            if count >= MAX_CLIENTS:
                self._db.execute("DELETE FROM clients WHERE client_id IN (SELECT client_id FROM clients "
                                 "ORDER BY last_used LIMIT ?)", (count - MAX_CLIENTS + 1,))  # fmt: skip
            self._db.execute("INSERT INTO clients VALUES (?, ?, ?)", (client_id, json.dumps(metadata), self.clock()))
        return Client(client_id, metadata)

    def client(self, client_id: str) -> Client | None:
        with self.lock:
            row = self._one("SELECT metadata FROM clients WHERE client_id = ?", client_id)
            if row is None:
                return None
            self._db.execute("UPDATE clients SET last_used = ? WHERE client_id = ?", (self.clock(), client_id))
        return Client(client_id, json.loads(row["metadata"]))

    # --- authorization codes --------------------------------------------------------------------------------

    def add_code(self, code: str, item: AuthorizationCode) -> None:
        with self.lock:
            self._sweep()
            self._db.execute(
                "INSERT INTO codes VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, NULL)",
                (digest(code), item.client_id, item.redirect_uri, item.scope, item.resource, item.code_challenge,
                 item.code_challenge_method, item.expires_at),
            )  # fmt: skip

    def code(self, code: str) -> AuthorizationCode | None:
        """The code's record, used or not (a used one is a replay: the caller revokes its family)."""
        with self.lock:
            row = self._one("SELECT * FROM codes WHERE code_hash = ?", digest(code))
        if row is None:
            return None
        return AuthorizationCode(**{**dict(row), "used": bool(row["used"])})

    def use_code(self, item: AuthorizationCode, family: str) -> None:
        with self.lock:
            self._db.execute("UPDATE codes SET used = 1, family = ? WHERE code_hash = ?", (family, item.code_hash))

    # --- refresh-token families -----------------------------------------------------------------------------

    def new_family(self, family: str, lifetime: float) -> None:
        with self.lock:
            self._db.execute("INSERT INTO families VALUES (?, 0, ?)", (family, self.clock() + lifetime))

    def family_live(self, family: str) -> bool:
        with self.lock:
            row = self._one("SELECT revoked, expires_at FROM families WHERE family = ?", family)
        return row is not None and not row["revoked"] and row["expires_at"] > self.clock()

    def revoke_family(self, family: str) -> None:
        with self.lock:
            self._db.execute("UPDATE families SET revoked = 1 WHERE family = ?", (family,))
            self._db.execute("UPDATE refresh_tokens SET used = 1 WHERE family = ?", (family,))

    def add_refresh(self, token: str, item: RefreshToken) -> None:
        with self.lock:
            self._db.execute(
                "INSERT INTO refresh_tokens VALUES (?, ?, ?, ?, ?, ?, ?, 0)",
                (digest(token), item.family, item.client_id, item.scope, item.resource, item.subject, item.expires_at),
            )
            self._db.execute("UPDATE families SET expires_at = MAX(expires_at, ?) WHERE family = ?",
                             (item.expires_at, item.family))  # fmt: skip

    def refresh(self, token: str) -> RefreshToken | None:
        """The token's record if it has not expired, used or not (a used one is a replay)."""
        with self.lock:
            row = self._one("SELECT * FROM refresh_tokens WHERE token_hash = ?", digest(token))
        if row is None or row["expires_at"] <= self.clock():
            return None
        return RefreshToken(**{**dict(row), "used": bool(row["used"])})

    def use_refresh(self, item: RefreshToken) -> None:
        with self.lock:
            self._db.execute("UPDATE refresh_tokens SET used = 1 WHERE token_hash = ?", (item.token_hash,))

    def _sweep(self) -> None:
        now = self.clock()
        self._db.execute("DELETE FROM codes WHERE expires_at < ?", (now - USED_CODE_KEEP_S,))
        self._db.execute("DELETE FROM refresh_tokens WHERE expires_at < ?", (now,))
        self._db.execute("DELETE FROM families WHERE expires_at < ?", (now,))
