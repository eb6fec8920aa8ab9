"""The unified image built from `deploy/` as it is, on a real engine: what a Fly machine would run.

Each server installs at start from the registries (the engine's containers trust the local machine's CA
through a mount, tests/tools/docker_engine/runc_local_ca.py), is served by the gateway as user 10001 behind the
bearer token, and the container stops promptly on `docker stop`. The image itself holds no CA but Debian's.
"""

from __future__ import annotations

import time

import httpx
import pytest

from components.mcpcheck import check
from tests.tools.docker_engine.certificates import certificates_in_image, debian_certificates, local_only
from tests.tools.docker_engine.containers import running
from tests.tools.docker_engine.engine import local_ca_bundle
from tests.tools.docker_engine.runc_local_ca import CA_ENV

pytestmark = [pytest.mark.network, pytest.mark.slow, pytest.mark.timeout(3600)]

TOKEN = "image-tier-token-5d1e"
START_TIMEOUT = 300  # install at start over the network on a vfs engine; a bound, not a speed target
SERVERS = {
    "npm": {
        "MCP_RUNTIME": "npm",
        "MCP_PACKAGE": "@modelcontextprotocol/server-memory@2026.8.31",
        "MCP_RESOLVED_AT": "2026-09-01T22:46:36.382Z",
    },
    "python": {
        "MCP_RUNTIME": "python",
        "MCP_PACKAGE": "mcp-server-time==2026.10.19",
        "MCP_RESOLVED_AT": "2026-10-19T06:48:51Z",
        "MCP_ARGS": '["--local-timezone", "UTC"]',
    },
}
TOOLS = {"npm": "read_graph", "python": "get_current_time"}


def test_the_image_runs_as_user_10001_and_owns_only_its_server_directory(docker_engine, runtime_image):
    config = docker_engine.docker("image", "inspect", "--format", "{{json .Config}}", runtime_image).stdout
    assert '"User":"10001:10001"' in config
    # The entrypoint itself is the ENTRYPOINT: it moves the token off its environment, then, as PID 1,
    # starts again under tini (docs/token-delivery.md), so tini must be in the image.
    assert '"Entrypoint":["/app/entrypoint.sh"]' in config
    tini = docker_engine.docker(
        "run", "--rm", "--network", "none", "--entrypoint", "sh", runtime_image, "-c", "command -v tini"
    )
    assert tini.stdout.strip() == "/usr/bin/tini"
    owners = docker_engine.docker(
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "stat",
        runtime_image,
        "-c",
        "%n %u",
        "/opt/mcp",
        "/home/app",
    ).stdout.split("\n")
    assert sorted(line for line in owners if line.strip()) == ["/home/app 10001", "/opt/mcp 10001"]
    # The app user runs the code in /app but cannot change any of it.
    writable = docker_engine.docker(
        "run", "--rm", "--network", "none", "--entrypoint", "find", runtime_image, "/app", "-writable"
    )
    assert writable.stdout.strip() == ""
    listed = docker_engine.docker("run", "--rm", "--network", "none", "--entrypoint", "find", runtime_image, "/app")
    assert "/app/entrypoint.sh" in listed.stdout.split()


@pytest.mark.parametrize("runtime", ["npm", "python"])
def test_a_container_serves_the_server_as_user_10001_only_with_the_token(docker_engine, runtime_image, runtime):
    with running(docker_engine, runtime_image, env={**SERVERS[runtime], "MCP_AUTH_TOKEN": TOKEN}) as box:
        answer = check(f"{box.url}/mcp", token=TOKEN, timeout=START_TIMEOUT, wait_until_up=True, poll_interval=1)
        assert answer.ok, f"{answer.error}\n{box.logs()[-3000:]}"
        assert TOOLS[runtime] in answer.tools
        assert box.uids() == {10001}, box.engine.docker("top", box.id).stdout

        refused = httpx.post(f"{box.url}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, timeout=10)
        assert refused.status_code == 401
        wrong = httpx.post(
            f"{box.url}/mcp",
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={"Authorization": "Bearer not-the-token"},
            timeout=10,
        )
        assert wrong.status_code == 401
        assert TOKEN not in box.logs()

        started = time.monotonic()
        docker_engine.docker("stop", "--time", "10", box.id, timeout=60)
        took = time.monotonic() - started
        assert took < 2.0, f"docker stop took {took:.1f} s (SIGTERM must end the gateway and the server)"
        state = box.inspect()["State"]
        assert state["Running"] is False


def test_the_image_trusts_no_certificate_authority_but_debians(docker_engine, runtime_image):
    """What the build reached the registries through (a TLS-intercepting proxy's CA) stays out of the image."""
    env = docker_engine.docker("image", "inspect", "--format", "{{json .Config.Env}}", runtime_image).stdout
    assert not [name for name in CA_ENV if f'"{name}=' in env], env
    found = certificates_in_image(docker_engine, runtime_image)
    debian = debian_certificates(found)
    assert len(debian) > 100, "Debian's ca-certificates store is missing from the image"
    local = local_only(local_ca_bundle(), debian)
    leaked = {body[:40]: paths for body, paths in found.items() if body in local}
    assert leaked == {}, f"the local machine's CA is in the image: {leaked}"


AUTHSERVER = {
    "CATWALK_AS_ISSUER": "https://demo-auth.fly.dev",
    "CATWALK_AS_SIGNING_SEED": "image-tier-seed-0123456789abcdefghijklmnop",
    "CATWALK_AS_PASSPHRASE": "image tier passphrase",
    "CATWALK_AS_RESOURCES": '["https://demo.fly.dev/mcp"]',
}


def test_the_image_serves_the_authorization_server_as_user_10001(docker_engine, runtime_image):
    """`entrypoint.sh authserver` from the gateway's venv (Authlib and joserfc as pinned), on no network at all."""
    with running(docker_engine, runtime_image, env=AUTHSERVER, args=["authserver"]) as box:
        deadline = time.monotonic() + 60
        while True:
            try:
                metadata = httpx.get(f"{box.url}/.well-known/oauth-authorization-server", timeout=5).json()
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, box.logs()[-3000:]
                time.sleep(0.5)
        assert metadata["issuer"] == AUTHSERVER["CATWALK_AS_ISSUER"]
        assert httpx.get(f"{box.url}/.well-known/jwks.json", timeout=5).json()["keys"][0]["alg"] == "EdDSA"
        client = httpx.post(f"{box.url}/register", json={"redirect_uris": ["https://claude.ai/cb"]}, timeout=5).json()
        page = httpx.get(f"{box.url}/authorize", timeout=5, params={
            "response_type": "code", "client_id": client["client_id"], "redirect_uri": "https://claude.ai/cb",
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "code_challenge_method": "S256",
            "resource": "https://demo.fly.dev/mcp"})  # fmt: skip
        assert page.status_code == 200 and 'name="passphrase"' in page.text
        assert box.uids() == {10001}, box.engine.docker("top", box.id).stdout
        logs = box.logs()
        assert AUTHSERVER["CATWALK_AS_SIGNING_SEED"] not in logs and AUTHSERVER["CATWALK_AS_PASSPHRASE"] not in logs
        started = time.monotonic()
        docker_engine.docker("stop", "--time", "10", box.id, timeout=60)
        assert time.monotonic() - started < 2.0
    refused = docker_engine.docker(
        "run", "--rm", "--network", "none", *[f"--env={k}={v}" for k, v in AUTHSERVER.items() if "PASSPHRASE" not in k],
        runtime_image, "authserver", check=False,
    )  # fmt: skip
    assert refused.returncode == 1 and "CATWALK_AS_PASSPHRASE" in refused.stdout  # stderr with stdout
