"""A stack with an OAuth server and no identity provider, deployed by the real program and providers against
the Fly emulator, whose machines run `deploy/entrypoint.sh` as local processes: the built-in authorization
server gets its own app and machine, answers its metadata, and the server points web connectors at it."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import httpx
import yaml

from tests.tools.entrypoint_env import TINY_SERVER
from tests.tools.fly_emulator.fixture import running_emulator
from tests.tools.harness import run_subprocess
from tests.tools.stack_files import emulator_env

ROOT = Path(__file__).resolve().parents[2]
PASSPHRASE = "a passphrase only the operator knows"


def wait_for(url: str, timeout: float = 120.0, **kwargs) -> httpx.Response:
    """The first answer of a machine that is still starting (installing nothing: a custom command)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return httpx.request(kwargs.pop("method", "GET"), url, timeout=10, **kwargs)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_up_deploys_the_builtin_authorization_server_and_the_oauth_server_points_connectors_at_it(tmp_path):
    script = tmp_path / "tiny.py"
    script.write_text(TINY_SERVER)
    config = tmp_path / "Pulumi.test.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "config": {
                    "catwalk:appPrefix": "acme",
                    "catwalk:image": "registry.fly.io/catwalk-test-images:local",
                    "catwalk:verify": False,
                    "catwalk:servers": [{"name": "notes", "command": f"{sys.executable} {script}", "auth": "oauth"}],
                }
            }
        )
    )
    with running_emulator(run_machines=True, workdir=tmp_path / "machines") as emulator:
        env = emulator_env(emulator)
        up = run_subprocess(
            "up",
            "test",
            project_dir=ROOT,
            config_file=config,
            state=tmp_path / "state.json",
            env=env,
            timeout=600,
            secrets={"catwalk:oauthPassphrase": PASSPHRASE},
        )
        assert up.ok, up.error
        machines = {m["app"]: m for m in emulator.machines() if m["state"] == "started"}
        logs = {
            m["app"]: Path(m["process"]["log"]).read_text()[-2000:] for m in emulator.machines() if m.get("process")
        }
        assert set(machines) == {"acme-auth", "acme-notes"}, logs.get("acme-auth")
        auth = machines["acme-auth"]
        assert emulator.emulator.state.machines[auth["id"]].config["init"] == {"cmd": ["authserver"]}
        assert PASSPHRASE not in str(emulator.emulator.state.machines[auth["id"]].config)
        assert up.outputs["authorization_server"]["issuer"] == "https://acme-auth.fly.dev"
        assert up.outputs["notes"]["auth"] == "oauth"
        assert up.outputs["notes"]["connector_url"] == "https://acme-notes.fly.dev/mcp"

        # The authorization server answers its metadata (RFC 8414) as the issuer the servers trust.
        metadata = wait_for(auth["process"]["url"] + "/.well-known/oauth-authorization-server")
        assert metadata.status_code == 200, metadata.text
        assert metadata.json()["issuer"] == "https://acme-auth.fly.dev"
        assert metadata.json()["code_challenge_methods_supported"] == ["S256"]

        # A bare request to the server gets 401 pointing at its metadata, which names the built-in server.
        server = machines["acme-notes"]["process"]["url"]
        bare = wait_for(server + "/mcp", method="POST", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
        assert bare.status_code == 401
        challenge = bare.headers["www-authenticate"]
        assert 'resource_metadata="https://acme-notes.fly.dev/.well-known/oauth-protected-resource/mcp"' in challenge
        document = httpx.get(server + "/.well-known/oauth-protected-resource/mcp", timeout=10).json()
        assert document["resource"] == "https://acme-notes.fly.dev/mcp"
        assert document["authorization_servers"] == ["https://acme-auth.fly.dev"]

        # Back to the static token: the authorization server goes, but its volume only when the operator says so.
        doc = yaml.safe_load(config.read_text())
        doc["config"]["catwalk:servers"][0]["auth"] = True
        config.write_text(yaml.safe_dump(doc))
        kept = run_subprocess("up", "test", project_dir=ROOT, config_file=config, state=tmp_path / "state.json",
                              env=env, timeout=600)  # fmt: skip
        assert not kept.ok and "catwalk:deleteVolumes" in kept.error
        volumes = emulator.emulator.state.volumes.values()
        assert [v for v in volumes if v.app == "acme-auth" and v.state != "destroyed"], "the volume is kept"
        doc["config"]["catwalk:deleteVolumes"] = ["auth"]
        config.write_text(yaml.safe_dump(doc))
        gone = run_subprocess("up", "test", project_dir=ROOT, config_file=config, state=tmp_path / "state.json",
                              env=env, timeout=600)  # fmt: skip
        assert gone.ok, gone.error
        assert "authorization_server" not in gone.outputs and gone.outputs["notes"]["auth"] == "bearer"
        assert not [m for m in emulator.machines() if m["app"] == "acme-auth" and m["state"] != "destroyed"]
