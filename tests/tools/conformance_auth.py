"""The official MCP conformance suite (``@modelcontextprotocol/conformance``, pinned in ``sdk_clients``) run with
authorization in play: its server scenarios as a client holding an access token (``conformance_bearer.mjs``,
preloaded, adds the header to every request the suite sends to the server), its authorization server scenarios
(a later pin, below) with the consent answered by the caller, and its scenario lists.

The suite needs Node >= 22: the image's Node is used (bench/image_runtime.py). Downloads on first use: tests that
use it are ``network``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from bench.image_runtime import image_node_bin
from tests.tools import sdk_clients

PRELOAD = Path(__file__).with_name("conformance_bearer.mjs")
SUITE_TIMEOUT_S = 600
# The first release (a pre-release) with the 2026-07-28 revision's server scenarios and an `authorization` mode,
# which tests an authorization server (its metadata, the authorization code grant with PKCE); the stable pin in
# sdk_clients has neither.
PRERELEASE_CONFORMANCE = "@modelcontextprotocol/conformance@0.2.0-alpha.12"


def suite_dir(spec: str = sdk_clients.CONFORMANCE) -> Path:
    return sdk_clients.npm_prefix(spec) / "node_modules" / "@modelcontextprotocol" / "conformance"


def node_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PATH": f"{image_node_bin()}{os.pathsep}{os.environ['PATH']}", **extra}


def scenarios(kind: str, spec: str = sdk_clients.CONFORMANCE) -> list[str]:
    """The scenario names the suite lists for ``kind`` (``server``, ``client``, or ``authorization`` where the
    suite has that mode), every spec version."""
    argv = ["node", str(suite_dir(spec) / "dist" / "index.js"), "list", f"--{kind}"]
    done = subprocess.run(argv, env=node_env(), capture_output=True, text=True, timeout=60, check=True)
    return [line.strip().removeprefix("- ").split(" [")[0] for line in done.stdout.splitlines()
            if line.strip().startswith("- ")]  # fmt: skip


def run_server_suite(
    url: str,
    version: str,
    out: Path,
    token: str | None = None,
    scenario: str | None = None,
    spec: str = sdk_clients.CONFORMANCE,
) -> tuple[dict[str, bool], str]:
    """Each server scenario of ``version`` the suite (``spec``) ran against ``url`` (``scenario``: that one only),
    whether all its checks passed, and the suite's output to show on failure. With ``token``, every request the
    suite sends to ``url``'s origin carries it as a bearer token."""
    suite = suite_dir(spec)
    argv = ["node"]
    extra: dict[str, str] = {}
    if token is not None:
        preload = suite.parents[2] / PRELOAD.name  # resolves `undici` from the suite's own prefix
        shutil.copyfile(PRELOAD, preload)
        argv += ["--import", preload.as_uri()]
        parts = urllib.parse.urlsplit(url)
        extra = {"CATWALK_BEARER_ORIGIN": f"{parts.scheme}://{parts.netloc}", "CATWALK_BEARER_TOKEN": token}
    argv += [str(suite / "dist" / "index.js"), "server", "--url", url, "--spec-version", version, "-o", str(out)]
    argv += ["--scenario", scenario] if scenario else []
    done = subprocess.run(argv, env=node_env(**extra), capture_output=True, text=True, timeout=SUITE_TIMEOUT_S,
                          check=False)  # fmt: skip
    results = {}
    for checks in out.glob("server-*/checks.json"):
        scenario = checks.parent.name.removeprefix("server-").rsplit("-", 6)[0]  # …-2026-12-02T02-46-45-660Z
        results[scenario] = all(check["status"] != "FAILURE" for check in json.loads(checks.read_text()))
    return results, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


def run_authorization_suite(
    issuer: str, client_id: str, resource: str, port: int, out: Path, approve: Callable[[str], None]
) -> tuple[dict[str, bool], str]:
    """Each authorization server scenario the suite ran against ``issuer`` and whether all its checks passed, and
    the suite's output. The suite prints the authorization URL a person would open and waits for the redirect
    to ``http://127.0.0.1:<port>/callback`` (which ``client_id`` must have registered); ``approve(url)`` is that
    person: it answers the consent and follows the redirect back to the suite."""
    suite = suite_dir(PRERELEASE_CONFORMANCE)
    argv = ["node", str(suite / "dist" / "index.js"), "authorization", "--url", issuer, "--client-id", client_id,
            "--resource", resource, "--port", str(port), "-o", str(out)]  # fmt: skip
    process = subprocess.Popen(argv, env=node_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    watchdog = threading.Timer(SUITE_TIMEOUT_S, process.kill)
    watchdog.start()
    lines: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if line.startswith(("http://", "https://")) and "code_challenge=" in line:  # the authorization URL
                approve(line.strip())
        process.wait()
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()
    results, failures = {}, []
    for checks in out.glob("authorization-server-*/checks.json"):
        scenario = checks.parent.name.removeprefix("authorization-server-").rsplit("-", 6)[0]
        failed = [check for check in json.loads(checks.read_text()) if check["status"] == "FAILURE"]
        results[scenario] = not failed
        failures += [f"{scenario}: {check.get('errorMessage')}" for check in failed]
    return results, "".join(lines)[-5000:] + "\n".join(failures)
