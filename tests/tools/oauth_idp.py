"""A stand-in for "your identity provider" on loopback: oauth2-mock-server (npm, pinned) set up as an operator sets
up Auth0, Okta, Keycloak or Entra for an MCP server (``oauth_idp.mjs`` says how), and the SDK's OAuth client run
against a server that points at it.

Downloads on first use (npm, and Node of the image's major: the mock needs Node >= 22): tests that use it are
``network``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.image_runtime import image_node_bin
from tests.tools import sdk_clients

MOCK_SERVER = "oauth2-mock-server@9.3.0"
PROGRAM = Path(__file__).with_name("oauth_idp.mjs")
OAUTH_CLIENT = sdk_clients.CLIENTS / "py_oauth_client.py"
TS_OAUTH_CLIENT = sdk_clients.CLIENTS / "ts_oauth_client.mjs"
START_TIMEOUT_S = 30.0
USER = "johndoe"  # whom the stand-in's tokens are for (`sub`), unless an authorization's login_hint names another


@dataclass
class Idp:
    """A running identity provider: its issuer URL (the tokens' ``iss``) and where its keys are."""

    issuer: str
    process: subprocess.Popen[bytes]

    @property
    def jwks_uri(self) -> str:
        return self.issuer + "/jwks"

    def token(self, resource: str, scope: str = "mcp:tools", client_id: str = "catwalk-test", user: str = USER) -> dict:
        """An access token for ``resource`` by the authorization code grant with PKCE (S256), as a client gets one,
        for ``user`` (who logs in: the authorization request's login_hint)."""
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        redirect_uri = "http://127.0.0.1:33418/callback"
        query = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri, "state": "s",
                 "code_challenge": challenge, "code_challenge_method": "S256", "scope": scope,
                 "resource": resource, "login_hint": user}  # fmt: skip
        authorize = httpx.get(self.issuer + "/authorize", params=query, timeout=10)
        assert authorize.status_code == 302, authorize.text
        code = urllib.parse.parse_qs(urllib.parse.urlsplit(authorize.headers["location"]).query)["code"][0]
        form = {"grant_type": "authorization_code", "code": code, "client_id": client_id, "redirect_uri": redirect_uri,
                "code_verifier": verifier, "resource": resource}  # fmt: skip
        answer = httpx.post(self.issuer + "/token", data=form, timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.json()


def node_path() -> str:
    return f"{image_node_bin()}{os.pathsep}{os.environ['PATH']}"


@contextlib.contextmanager
def running_idp() -> Iterator[Idp]:
    """Start the identity provider on a free loopback port; stop it on exit."""
    prefix = sdk_clients.npm_prefix(MOCK_SERVER)
    program = prefix / PROGRAM.name  # ES modules resolve their imports from the program's own folder
    shutil.copyfile(PROGRAM, program)
    # Its complaints go to a file, not a pipe nobody reads (a full pipe would stall it).
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            ["node", str(program)], env={**os.environ, "PATH": node_path()}, stdout=subprocess.PIPE, stderr=log
        )
        try:
            assert process.stdout is not None
            first: list[bytes] = []
            reader = threading.Thread(target=lambda: first.append(process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
            reader.start()
            reader.join(START_TIMEOUT_S)
            if not first or not first[0]:
                process.kill()
                process.wait(10)
                log.seek(0)
                raise RuntimeError(
                    f"the identity provider did not start: {log.read().decode(errors='replace')[-2000:]}"
                )
            yield Idp(json.loads(first[0])["issuer"], process)
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)


def oauth_client(
    sdk: str,
    url: str,
    mode: str,
    client: str,
    tool: str = "echo",
    timeout: float = 180,
    routes: dict[str, str] | None = None,
) -> dict:
    """Run the SDK's OAuth client against ``url``: ``py_oauth_client.py`` with the pinned ``mcp`` ``sdk``, or
    ``ts_oauth_client.mjs`` when ``sdk`` is the pinned TypeScript client; its JSON report. ``routes``: origins
    (``https://<app>.fly.dev``) the client reaches at a loopback address instead, as through Fly's edge."""
    if sdk == sdk_clients.TS_CLIENT:
        program = sdk_clients.npm_prefix(sdk) / TS_OAUTH_CLIENT.name  # ES modules resolve from the prefix
        shutil.copyfile(TS_OAUTH_CLIENT, program)
        argv = ["node", str(program), url, mode, client, tool]
    else:
        argv = [str(sdk_clients.python_env(sdk)), str(OAUTH_CLIENT), url, mode, client, tool]
    env = {**os.environ, "PATH": node_path(), "CATWALK_TEST_ROUTES": json.dumps(routes or {})}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, env=env)
    lines = done.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, ValueError):
        return {"error": f"exit {done.returncode}: {done.stdout[-1000:]} {done.stderr[-2000:]}"}
