"""entrypoint.sh and catwalk_runtime.contract (which the deployer imports) state the same rules.

The entrypoint checks its environment in shell, before any Python runs; these tests run it on a table of
values and compare each verdict with the contract's, so a change on one side alone fails here.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from catwalk_runtime import contract
from components import safety
from components.detect.models import RuntimeSpec
from components.image import baked
from tests.tools.entrypoint_env import FAKE_INSTALLER, base_env, run_entrypoint

SPECS = [
    ("python", "mcp-server-git"),
    ("python", "mcp-server-git==2026.10.19"),
    ("python", "Some_Pkg.name==1.0rc1"),
    ("python", "pkg==latest"),
    ("python", "a"),
    ("python", "a" * 202),
    ("python", "a" * 203),
    ("python", "pkg==" + "1" * 64),
    ("python", "pkg==" + "1" * 65),
    ("python", "pkg."),
    ("python", "-rf"),
    ("python", "pkg==1.0;id"),
    ("python", "pkg>=1.0"),
    ("python", "pkg[extra]==1.0"),
    ("python", "pkg ==1.0"),
    ("python", "péché==1.0"),
    ("npm", "@modelcontextprotocol/server-memory@2026.8.31"),
    ("npm", "@scope/name"),
    ("npm", "name@next"),
    ("npm", "name@1.0.0-beta.1"),
    ("npm", "name"),
    ("npm", "@scope/"),
    ("npm", "@/name"),
    ("npm", "name@@1"),
    ("npm", "name@^1.0"),
    ("npm", "name@1.0 && id"),
    ("npm", "github:owner/repo"),
    ("npm", "-g"),
]


def _verdict(result) -> bool:
    """True when the entrypoint accepted the spec (it then finds nothing installed), False when it refused it."""
    if "is not installed under" in result.stderr:
        return True
    assert "package spec" in result.stderr, result.stderr
    return False


@pytest.mark.parametrize(("runtime", "spec"), SPECS, ids=[f"{r}:{s[:24]}" for r, s in SPECS])
def test_the_entrypoint_accepts_exactly_the_package_specs_the_contract_allows(tmp_path: Path, runtime, spec):
    env = base_env(tmp_path / "home", MCP_RUNTIME=runtime, MCP_PACKAGE=spec)
    result = run_entrypoint(env, "serve", timeout=30)
    assert result.returncode == 1
    assert _verdict(result) is bool(contract.spec_pattern(runtime).match(spec))


@pytest.mark.parametrize(("runtime", "spec"), SPECS, ids=[f"{r}:{s[:24]}" for r, s in SPECS])
def test_every_spec_the_deployer_bakes_is_one_the_entrypoint_accepts(runtime, spec):
    if contract.spec_pattern(runtime, pinned=True).match(spec):
        assert contract.spec_pattern(runtime).match(spec)
        baked.check_pinned_package(runtime, spec)  # the deployer's own check takes it too


@pytest.mark.parametrize("char", sorted(contract.COMMAND_META))
def test_the_entrypoint_and_the_deployer_refuse_each_command_metacharacter(tmp_path: Path, char: str):
    command = f"server-x{char}y"
    with pytest.raises(ValueError, match="runs without a shell"):
        safety.parse_command(command)
    env = base_env(tmp_path / "home", MCP_RUNTIME="custom", MCP_COMMAND=command)
    result = run_entrypoint(env, "install", timeout=30)
    assert result.returncode == 1 and "shell metacharacters" in result.stderr, result.stderr


@pytest.mark.parametrize("char", ["=", "@", "%", "+", ",", ":", ".", "/", "^", "_"])
def test_other_punctuation_passes_both_sides(tmp_path: Path, char: str):
    command = f"server-x{char}y"
    assert safety.parse_command(command) == [command]
    env = base_env(tmp_path / "home", MCP_RUNTIME="custom", MCP_COMMAND=command)
    result = run_entrypoint(env, "install", timeout=30)
    # Past the shell's checks: the launch resolution looks the command up, and does not find it.
    assert result.returncode == 1 and "was not found or is not executable" in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("runtime", "spec"), [("npm", "@fake/mcp@1.0.0"), ("python", "fake-mcp==1.0.0")], ids=["npm", "python"]
)
def test_a_server_is_installed_where_the_contract_says(tmp_path: Path, runtime: str, spec: str):
    fake = tmp_path / "fake-installer"
    fake.write_text(FAKE_INSTALLER)
    fake.chmod(0o755)
    (tmp_path / "log").write_text("")
    values = {
        "MCP_RUNTIME": runtime,
        "MCP_PACKAGE": spec,
        "MCP_LAUNCH": json.dumps(["fake-server"]),
        "MCP_EXCLUDE_NEWER": "none",
        "UV": str(fake),
        "NPM": str(fake),
        "FAKE_LOG": str(tmp_path / "log"),
        "FAKE_SOLVES_AT": "none",
    }
    result = run_entrypoint(base_env(tmp_path / "home", **values), "install", timeout=60)
    assert result.returncode == 0, result.stderr
    where = Path(contract.env_dir(tmp_path / "home", runtime, spec))
    assert (where / contract.INSTALLED_MARKER).read_text().splitlines()[0] == f"spec={spec}"
    assert [p.name for p in (tmp_path / "home").iterdir()] == [runtime]


@pytest.mark.parametrize("var", contract.CHECKED_VARS)
def test_the_entrypoint_refuses_a_control_character_in_each_checked_variable(tmp_path: Path, var: str):
    env = base_env(tmp_path / "home", MCP_RUNTIME="python", MCP_PACKAGE="pkg==1.0")
    env[var] = "value\tmore"
    result = run_entrypoint(env, "serve", timeout=30)
    assert result.returncode == 1 and f"{var} contains a control character" in result.stderr, result.stderr


RELEASED = datetime(2026, 10, 19, 6, 48, 45, 120000, timezone.utc)
SPECS_DETECTED = {
    "python": RuntimeSpec(
        spec="mcp-server-git",
        runtime="python",
        pinned="mcp-server-git==2026.10.19",
        launch=["mcp-server-git"],
        resolved_at=RELEASED,
    ),
    "npm-browser": RuntimeSpec(
        spec="@playwright/mcp", runtime="npm", pinned="@playwright/mcp@0.0.41", args=["--headless"], browser="chromium"
    ),
    "custom": RuntimeSpec(
        spec="custom", runtime="custom", command=f"{sys.executable} -m http.server", args=["--bind", "127.0.0.1"]
    ),
}
KNOWN_VARS = {
    contract.RUNTIME, contract.PACKAGE, contract.COMMAND, contract.ARGS, contract.LAUNCH, contract.RESOLVED_AT,
    contract.NEEDS_BROWSER,
}  # fmt: skip


@pytest.mark.parametrize("name", SPECS_DETECTED)
def test_what_detection_sets_on_a_machine_is_what_the_entrypoint_accepts(tmp_path: Path, name: str):
    server_env = SPECS_DETECTED[name].env()
    assert set(server_env) <= KNOWN_VARS
    if contract.RESOLVED_AT in server_env:
        assert contract.RESOLVED_AT_FORMAT.match(server_env[contract.RESOLVED_AT])
    env = base_env(tmp_path / "home", **server_env)
    if contract.NEEDS_BROWSER in server_env:
        env[contract.BROWSER] = "/usr/bin/chromium"
    if name == "custom":
        result = run_entrypoint(env, "install", timeout=30)
        assert result.returncode == 0 and "Nothing to install for a custom command" in result.stderr, result.stderr
    else:
        result = run_entrypoint(env, "serve", timeout=30)
        assert result.returncode == 1 and "is not installed under" in result.stderr, result.stderr
