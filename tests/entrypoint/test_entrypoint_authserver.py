"""`entrypoint.sh authserver`: the stack's authorization server, started as the image starts it; it refuses to
start without its settings, naming each missing one and never showing a secret."""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from pathlib import Path

import pytest

from catwalk_runtime import contract
from tests.tools.entrypoint_env import base_env, run_entrypoint, serving

SEED = "entrypoint-test-seed-0123456789-abcdefghij"
PASSPHRASE = "entrypoint passphrase"


def authserver_env(home: Path, **changes: str | None) -> dict[str, str]:
    env = base_env(home, MCP_HOST="loopback")
    port = env["PORT"]
    env.update({
        contract.AS_ISSUER: f"http://127.0.0.1:{port}",
        contract.AS_SIGNING_SEED: SEED,
        contract.AS_PASSPHRASE: PASSPHRASE,
        contract.AS_RESOURCES: json.dumps(["http://127.0.0.1:1/mcp"]),
    })  # fmt: skip
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


@pytest.mark.parametrize("missing", contract.AS_REQUIRED)
def test_authserver_refuses_to_start_without_a_required_setting(tmp_path: Path, missing: str) -> None:
    started = time.monotonic()
    result = run_entrypoint(authserver_env(tmp_path, **{missing: None}), "authserver", timeout=30)
    assert result.returncode == 1 and time.monotonic() - started < 5
    assert missing in result.stderr and "refusing to start" in result.stderr
    assert SEED not in result.stderr + result.stdout and PASSPHRASE not in result.stderr + result.stdout


def test_authserver_refuses_a_short_seed_naming_it_without_showing_it(tmp_path: Path) -> None:
    result = run_entrypoint(authserver_env(tmp_path, **{contract.AS_SIGNING_SEED: "too-short"}), "authserver",
                            timeout=60)  # fmt: skip
    assert result.returncode == 1
    assert f"{contract.AS_SIGNING_SEED} must be at least 32 characters" in result.stderr
    assert "too-short" not in result.stderr


def test_authserver_serves_its_metadata_on_port(tmp_path: Path) -> None:
    env = authserver_env(tmp_path)
    with serving(env, "authserver") as served:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(served.url(path="/.well-known/oauth-authorization-server"), timeout=2) as r:
                    document = json.load(r)
                break
            except OSError:
                assert served.process.poll() is None, served.output()
                assert time.monotonic() < deadline, served.output()
                time.sleep(0.1)
        assert document["issuer"] == env[contract.AS_ISSUER]
        assert SEED not in served.output() and PASSPHRASE not in served.output()
        served.process.send_signal(signal.SIGTERM)  # as Fly stops a machine
        assert served.wait(5) == 0


def test_authserver_says_when_its_state_directory_cannot_hold_its_database(tmp_path: Path) -> None:
    blocked = tmp_path / "state"
    blocked.mkdir()
    (blocked / "authserver.sqlite3").mkdir()  # where the database file should be
    result = run_entrypoint(authserver_env(tmp_path, **{contract.AS_STATE: str(blocked)}), "authserver", timeout=60)
    assert result.returncode == 1
    assert f"{contract.AS_STATE}={blocked}: its database cannot be used" in result.stderr
    assert "Traceback" not in result.stderr
