"""Test helpers around tests/tools/fakes/docker: put it on PATH, pick a mode, read back what was run."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

FAKES = Path(__file__).resolve().parent
TOKEN = "fly-test-token-Zq8xT3v"  # a value to look for wherever a secret must not appear


@dataclass
class FakeDocker:
    log: Path
    monkeypatch: object

    def mode(self, mode: str) -> None:
        self.monkeypatch.setenv("FAKE_DOCKER_MODE", mode)

    def calls(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def builds(self) -> list[dict]:
        return [c for c in self.calls() if c["argv"][:2] == ["buildx", "build"]]

    def clear(self) -> None:
        if self.log.exists():
            self.log.unlink()


def install(tmp_path: Path, monkeypatch) -> FakeDocker:
    """Fake docker first on PATH, a fresh log, mode ok, and a Fly token in the environment."""
    log = tmp_path / "docker-calls.jsonl"
    monkeypatch.setenv("PATH", str(FAKES) + os.pathsep + os.environ.get("PATH", ""))
    monkeypatch.setenv("FAKE_DOCKER_LOG", str(log))
    monkeypatch.setenv("FAKE_DOCKER_MODE", "ok")
    monkeypatch.delenv("FAKE_DOCKER_NO_METADATA", raising=False)
    monkeypatch.delenv("FLY_ACCESS_TOKEN", raising=False)
    monkeypatch.setenv("FLY_API_TOKEN", TOKEN)
    return FakeDocker(log=log, monkeypatch=monkeypatch)
