"""Baked images built by the image provider on the pushed unified image, served with no network at all.

Each server is detected as the program detects it and baked, the four at once as `up` bakes a stack's
servers (each build stage really runs: compilers for a native module, Debian's Chromium for a browser server),
and pushed to the local registry; a container of the pushed digest then answers MCP with `--network none`, so
nothing is downloaded at start. The client runs inside the container (tests/tools/docker_engine/mcp_probe.py),
the only place such a server can be reached."""

from __future__ import annotations

import json
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from components.detect import detect
from components.image import ImageProvider, baked_from_spec
from tests.docker.conftest import RUNTIME_APP, say
from tests.tools.docker_engine.certificates import local_ca_in_image
from tests.tools.docker_engine.containers import running

pytestmark = [pytest.mark.network, pytest.mark.slow, pytest.mark.timeout(3600)]

PROBE = Path(__file__).resolve().parents[1] / "tools" / "docker_engine" / "mcp_probe.py"
TOKEN = "baked-tier-token-0c7a"
PAGE = "data:text/html,<p>baked offline</p>"
# spec, a tool it lists, calls to make (with a text each answer must hold), the container's extra env
SERVERS = {
    "npm": ("@modelcontextprotocol/server-memory@2026.8.31", "read_graph", [], {}),
    "python": (
        "mcp-server-time==2026.10.19",
        "get_current_time",
        [(("get_current_time", {"timezone": "UTC"}), "UTC")],
        {"MCP_ARGS": '["--local-timezone", "UTC"]'},
    ),
    # better-sqlite3: a native module, compiled in the build stage against Node's headers; the call loads it.
    "native": (
        "mcp-server-sqlite@0.0.2",
        "list-tables",
        [(("list-tables", {}), "")],
        {"MCP_ARGS": '["--db", "/tmp/baked.db"]'},
    ),
    "browser": (
        "@modelcontextprotocol/server-puppeteer@2025.5.12",
        "puppeteer_navigate",
        [
            (("puppeteer_navigate", {"url": PAGE}), PAGE.split(",")[0]),
            (("puppeteer_evaluate", {"script": "document.querySelector('p').textContent"}), "baked offline"),
        ],
        {},
    ),
}


def probe(engine, container_id: str, port: int, calls: list) -> dict:
    done = engine.docker(
        "exec",
        "-i",
        container_id,
        "/opt/gateway/bin/python",
        "-",
        str(port),
        TOKEN,
        json.dumps([call for call, _ in calls]),
        stdin=PROBE.read_text(),
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


# Chromium runs sandboxed as the app user, and its sandbox makes a user namespace. A Fly machine is a VM that
# allows it; Docker's default seccomp profile refuses it (Chromium then exits with "No usable sandbox"), so the
# browser server's container runs without that profile, as a machine does. Nothing else is loosened.
CONTAINER_OPTIONS = {"browser": ["--security-opt", "seccomp=unconfined"]}


def bake(kind: str, base: str) -> tuple[dict, bool, float]:
    """Detect and bake one server on the pushed unified image: its outputs, whether it drives a browser, seconds."""
    spec = SERVERS[kind][0]
    found = detect(spec)
    inputs = {"kind": "baked", "app": f"catwalk-test-{kind}", "base": base, **baked_from_spec(found)}
    provider = ImageProvider()
    checked = provider.check({}, inputs)
    assert not checked.failures, [(f.property, f.reason) for f in checked.failures]
    started = time.monotonic()
    outs = provider.create(checked.inputs).outs
    return outs, inputs["browser"], time.monotonic() - started


@pytest.fixture(scope="module")
def baked(provider_env, pushed_runtime, request) -> dict[str, Future]:
    """The four images baked at once, as `pulumi up` bakes a stack's servers (each test takes its own result)."""
    started = time.monotonic()
    with ThreadPoolExecutor(len(SERVERS)) as pool:
        futures = {kind: pool.submit(bake, kind, pushed_runtime["image_ref"]) for kind in SERVERS}
        for kind, future in futures.items():
            if future.exception() is None:
                outs, _, took = future.result()
                say(request.config, f"baked {SERVERS[kind][0]} ({kind}) in {took:.0f} s: {outs['image_ref']}")
    say(request.config, f"the four baked images built at once in {time.monotonic() - started:.0f} s")
    return futures


@pytest.mark.parametrize("kind", list(SERVERS))
def test_a_baked_image_built_by_the_provider_serves_with_no_network(provider_env, pushed_runtime, baked, kind):
    _, tool, calls, extra_env = SERVERS[kind]
    outs, browser, _ = baked[kind].result()
    assert browser is (kind == "browser")
    assert outs["image_ref"].startswith(f"{provider_env.registry}/catwalk-test-{kind}@sha256:")
    assert pushed_runtime["repository"] == f"{provider_env.registry}/{RUNTIME_APP}"

    port = 8080
    env = {"MCP_AUTH_TOKEN": TOKEN, "PORT": str(port), **extra_env}
    options = CONTAINER_OPTIONS.get(kind, [])
    with running(provider_env, outs["image_ref"], env=env, network="none", options=options) as box:
        answer = probe(provider_env, box.id, port, calls)
        assert tool in answer["tools"], box.logs()[-3000:]
        for (call, expected), result in zip(calls, answer["calls"], strict=True):
            assert result["error"] is None and expected in result["text"], (call, result, box.logs()[-2000:])
        assert box.uids() == {10001}
        assert "Installing" not in box.logs() and "Downloading" not in box.logs()
    # Its build stage installed through the local CA (the engine's mount); none of it reached the image.
    assert local_ca_in_image(provider_env, outs["image_ref"]) == {}
    if kind == "native":  # no compiler reached the runtime image: the build stage kept it
        cc = provider_env.docker(
            "run",
            "--rm",
            "--network",
            "none",
            "--entrypoint",
            "sh",
            outs["image_ref"],
            "-c",
            "command -v gcc g++ make || echo none",
        )
        assert cc.stdout.strip() == "none"
