"""A small disk cache of registry facts, under ``$CATWALK_CACHE_DIR`` (default ``~/.cache/catwalk``).

Two kinds of entries: facts about one *released version* (metadata, entry points, bins) never change, so
they are kept forever; answers to "which versions exist" change, so they expire after ``ttl`` seconds
(``$CATWALK_CACHE_TTL``, default one hour). Entries are JSON files written atomically, so concurrent
detections (threads or processes) never read a half-written entry. Files are created private (0600).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

DEFAULT_TTL = 3600.0


def default_dir() -> Path:
    return Path(os.environ.get("CATWALK_CACHE_DIR") or Path.home() / ".cache" / "catwalk")


def _digest(key: str) -> str:
    # Keys hold index URLs, which may carry credentials: only their hash is written to disk.
    return hashlib.sha256(key.encode()).hexdigest()


class DiskCache:
    """JSON values by string key; ``get(key, ttl=None)`` ignores age, ``ttl=…`` expires old entries."""

    def __init__(self, root: str | Path | None = None, *, ttl: float | None = None, enabled: bool = True):
        self.root = Path(root) if root is not None else default_dir()
        self.ttl = float(os.environ.get("CATWALK_CACHE_TTL", DEFAULT_TTL)) if ttl is None else ttl
        self.enabled = enabled

    def _path(self, key: str) -> Path:
        digest = _digest(key)
        return self.root / "detect" / digest[:2] / f"{digest}.json"

    def get(self, key: str, *, immutable: bool = True) -> Any | None:
        if not self.enabled:
            return None
        path = self._path(key)
        try:
            if not immutable and time.time() - path.stat().st_mtime > self.ttl:
                return None
            entry = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return entry.get("value") if isinstance(entry, dict) and entry.get("key") == _digest(key) else None

    def put(self, key: str, value: Any) -> None:
        if not self.enabled:
            return
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(fd, "w") as handle:
                json.dump({"key": _digest(key), "value": value}, handle)
            os.replace(tmp, path)
        except OSError:
            pass  # a cache that cannot be written only costs speed
