"""Real MCP clients and servers for tests and benchmarks, each pinned and in an environment of its own.

The project's own venv holds ``mcp`` 1.x (the SDK the relay fixture and checks use); the clients of the stateless
revision (``mcp`` 2.x, the TypeScript SDK 2.x), the reference server (server-everything) and the conformance suite
get their own venv or npm prefix under ``CATWALK_TEST_CACHE`` (default ``~/.cache/catwalk-test``), made once and
reused while the pin is the same. Everything here downloads on first use: tests that call it are ``network``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = ROOT / "tests" / "fixtures" / "clients"
CACHE = Path(os.environ.get("CATWALK_TEST_CACHE", Path.home() / ".cache" / "catwalk-test"))

PY_SDK2 = "mcp==2.3.0"
PY_SDK1 = "mcp==1.30.0"
TS_CLIENT = "@modelcontextprotocol/client@2.4.0"
EVERYTHING = "@modelcontextprotocol/server-everything@2026.8.31"
CONFORMANCE = "@modelcontextprotocol/conformance@0.1.16"
INSTALL_TIMEOUT = 600


class EnvError(RuntimeError):
    """A pinned environment could not be made (the registry's or the installer's words attached)."""


def _slug(spec: str) -> str:
    return spec.replace("@", "_at_").replace("/", "_").replace("=", "_")


def _run(argv: list[str], **kwargs) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False, **kwargs)
    if done.returncode != 0:
        raise EnvError(f"{' '.join(argv[:4])}… failed ({done.returncode}): {(done.stderr or done.stdout)[-2000:]}")


def python_env(spec: str) -> Path:
    """The python of a venv holding ``spec`` (and httpx for mcp 1.x's transport), made once with uv."""
    home = CACHE / "py" / _slug(spec)
    python = home / "bin" / "python"
    marker = home / ".catwalk-pinned"
    if marker.exists() and marker.read_text() == spec and python.exists():
        return python
    shutil.rmtree(home, ignore_errors=True)
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    env = {**os.environ, "UV_SYSTEM_CERTS": "1"}
    _run([uv, "venv", "--quiet", "--python", sys.executable, str(home)], env=env)
    _run([uv, "pip", "install", "--quiet", "--python", str(python), spec], env=env)
    marker.write_text(spec)
    return python


def npm_prefix(spec: str) -> Path:
    """An npm prefix holding ``spec`` (and what it depends on), made once."""
    home = CACHE / "npm" / _slug(spec)
    marker = home / ".catwalk-pinned"
    if marker.exists() and marker.read_text() == spec:
        return home
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    (home / "package.json").write_text(json.dumps({"name": "catwalk-test-env", "private": True}))
    _run(["npm", "install", "--prefix", str(home), "--no-audit", "--no-fund", "--loglevel=error", spec])
    marker.write_text(spec)
    return home


def py_client(
    spec: str, url: str, token: str, mode: str, timeout: float = 180, clients: int = 0, calls: int = 0
) -> dict:
    """Run ``py_sdk_client.py`` with the pinned ``mcp`` ``spec``; its JSON report (``error`` set on failure).
    ``clients``: that many basic clients at once in one process (the report's ``clients`` lists theirs);
    ``calls``: only that many ``echo`` calls (the report's ``answers``)."""
    extra = ["basic", str(clients)] if clients else ["calls", str(calls)] if calls else []
    return _report([str(python_env(spec)), str(CLIENTS / "py_sdk_client.py"), url, token, mode, *extra], timeout)


def ts_client(url: str, token: str, mode: str, timeout: float = 180) -> dict:
    """Run ``ts_sdk_client.mjs`` from the pinned TypeScript client's prefix (ES modules resolve from there)."""
    prefix = npm_prefix(TS_CLIENT)
    script = prefix / "ts_sdk_client.mjs"
    shutil.copyfile(CLIENTS / "ts_sdk_client.mjs", script)
    return _report(["node", str(script), url, token, mode], timeout)


def _report(argv: list[str], timeout: float) -> dict:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    lines = done.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, ValueError):
        return {"error": f"exit {done.returncode}: {done.stdout[-1000:]} {done.stderr[-2000:]}"}


def everything_bin() -> Path:
    """server-everything's launcher (``mcp-server-everything [stdio|streamableHttp]``), pinned."""
    return npm_prefix(EVERYTHING) / "node_modules" / ".bin" / "mcp-server-everything"
