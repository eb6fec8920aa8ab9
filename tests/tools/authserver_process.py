"""The built-in authorization server as a local process on a free loopback port, for tests and benchmarks.

``running_authserver(resources)`` starts ``python -m catwalk_runtime.authserver`` with a fresh signing seed
and the given passphrase, waits until its metadata answers, and stops it at the end (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.tools.entrypoint_env import free_port
from tests.tools.processes import stop

PASSPHRASE = "correct horse battery staple"
START_TIMEOUT = 30.0


@dataclass
class AuthServer:
    url: str  # its issuer: http://127.0.0.1:<port>
    passphrase: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


def authserver_env(issuer: str, resources: Sequence[str], passphrase: str = PASSPHRASE, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CATWALK_AS_", "MCP_"))}
    env.update({
        "CATWALK_AS_ISSUER": issuer,
        "CATWALK_AS_SIGNING_SEED": secrets.token_urlsafe(32),
        "CATWALK_AS_PASSPHRASE": passphrase,
        "CATWALK_AS_RESOURCES": json.dumps(list(resources)),
    })  # fmt: skip
    env.update(extra)
    return env


@contextlib.contextmanager
def running_authserver(
    resources: Sequence[str], passphrase: str = PASSPHRASE, port: int | None = None, **extra: str
) -> Iterator[AuthServer]:
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    env = authserver_env(url, resources, passphrase, **extra)
    with tempfile.NamedTemporaryFile("wb", suffix=".log", delete=False) as log:
        log_path = Path(log.name)
    with log_path.open("wb") as sink:
        argv = [sys.executable, "-m", "catwalk_runtime.authserver", "--port", str(port), "--host", "127.0.0.1"]
        process = subprocess.Popen(argv, env=env, stdout=sink, stderr=subprocess.STDOUT)
    server = AuthServer(url, passphrase, process, log_path)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                with urllib.request.urlopen(f"{url}/.well-known/oauth-authorization-server", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the authorization server did not start:\n{server.output()[-3000:]}") from None
                time.sleep(0.05)
        yield server
    finally:
        stop(process)
        log_path.unlink(missing_ok=True)
