"""What an install at boot is handed: the registries' settings, never the bearer token or the app's secrets."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from tests.tools.entrypoint_env import base_env, serving

# Stands in for uv: records the environment and open descriptors of `uv pip install`, then installs nothing.
RECORDING_UV = f"""#!{sys.executable}
import json, os, sys
from pathlib import Path

args = sys.argv[1:]
if args[0] == "venv":
    Path(args[-1], "bin").mkdir(parents=True)
    sys.exit(0)
fds = sorted(int(fd) for fd in os.listdir("/proc/self/fd"))
Path(os.environ["SEEN_FILE"]).write_text(json.dumps({{"env": dict(os.environ), "fds": fds}}))
sys.exit(1)
"""


def test_an_install_at_boot_sees_neither_the_token_nor_the_apps_secrets(tmp_path: Path) -> None:
    uv, seen = tmp_path / "uv", tmp_path / "seen.json"
    uv.write_text(RECORDING_UV)
    uv.chmod(0o755)
    token, secret = "boot-token-" + "4" * 32, "ghp_app_secret_value"
    env = base_env(
        tmp_path / "home", MCP_RUNTIME="python", MCP_PACKAGE="mcp-server-time==1.0.0", UV=str(uv),
        MCP_AUTH_TOKEN=token, GITHUB_TOKEN=secret, DATABASE_URL=f"postgres://u:{secret}@db/x",
        SSL_CERT_FILE="/etc/ssl/certs/ca-certificates.crt", LANG="C.UTF-8",
        MCP_INSTALL_ENV="SEEN_FILE", SEEN_FILE=str(seen),
    )  # fmt: skip
    with serving(env) as served:
        deadline = time.monotonic() + 30
        while not seen.exists() and served.process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        code = served.wait(30)
        output = served.output()
    assert seen.exists(), output
    record = json.loads(seen.read_text())
    installer_env = record["env"]
    assert code != 0 and "install of mcp-server-time==1.0.0 failed" in output
    assert not {"MCP_AUTH_TOKEN", "MCP_AUTH_FD", "GITHUB_TOKEN", "DATABASE_URL"} & set(installer_env)
    assert token not in json.dumps(installer_env) and secret not in json.dumps(installer_env)
    assert [fd for fd in record["fds"] if fd > 2 and fd != max(record["fds"])] == [], record["fds"]
    assert installer_env["PATH"] == env["PATH"] and installer_env["HOME"] == env["HOME"]
    assert installer_env["SSL_CERT_FILE"] == "/etc/ssl/certs/ca-certificates.crt" and installer_env["LANG"] == "C.UTF-8"


def test_an_image_adds_install_variables_by_name_and_a_bad_name_stops_the_start(tmp_path: Path) -> None:
    from catwalk_runtime.boot import install_environment
    from catwalk_runtime.errors import UsageError

    environ = {"PATH": "/bin", "GITHUB_TOKEN": "x", "PIP_INDEX_URL": "https://pypi.example/simple"}
    assert install_environment(environ) == {"PATH": "/bin"}
    environ["MCP_INSTALL_ENV"] = "PIP_INDEX_URL"
    assert install_environment(environ) == {"PATH": "/bin", "PIP_INDEX_URL": "https://pypi.example/simple",
                                            "MCP_INSTALL_ENV": "PIP_INDEX_URL"}  # fmt: skip
    environ["MCP_INSTALL_ENV"] = "PIP_INDEX_URL $(id)"
    with pytest.raises(UsageError, match=r"MCP_INSTALL_ENV: '\$\(id\)' is not a variable name"):
        install_environment(environ)
    env = base_env(tmp_path / "home", MCP_RUNTIME="python", MCP_PACKAGE="mcp-server-time==1.0.0",
                   MCP_AUTH_TOKEN="t" * 40, MCP_INSTALL_ENV="BAD-NAME")  # fmt: skip
    with serving(env) as served:
        assert served.wait(30) == 1
        assert "MCP_INSTALL_ENV: 'BAD-NAME' is not a variable name" in served.output()
