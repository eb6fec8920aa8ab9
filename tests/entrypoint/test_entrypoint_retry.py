"""`entrypoint.sh install` widens the as-of-release cutoff when nothing resolves, and only then.

Offline: uv and npm are replaced (through the UV and NPM env vars the entrypoint honours) by one fake
installer that records every cutoff it is given and resolves only as of one chosen cutoff. The real case
(markitdown-mcp 0.0.1a8) is the network test in tests/entrypoint/test_entrypoint.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.tools.entrypoint_env import FAKE_INSTALLER, base_env, run_entrypoint

RESOLVED_AT = "2026-10-21T19:41:57Z"
# What the gateway derives from RESOLVED_AT: release + 1 h, then the widened cutoffs + 1 day, 7 days, 30 days.
FIRST = "2026-10-21T20:41:57Z"
WIDENED = ["2026-10-22T19:41:57Z", "2026-10-28T19:41:57Z", "2026-11-20T19:41:57Z"]
NO_CUTOFF = "none"  # how the fake installer records an install without a cutoff
PACKAGES = {"python": "fake-mcp==1.0.0", "npm": "@fake/mcp@1.0.0"}


@pytest.fixture
def fake_installer(tmp_path: Path) -> Path:
    path = tmp_path / "fake-installer"
    path.write_text(FAKE_INSTALLER)
    path.chmod(0o755)
    return path


def install(tmp_path: Path, fake: Path, runtime: str, solves_at: str, **env: str):
    """Run `entrypoint.sh install` with the fake installer; return the result and the cutoffs it was given."""
    log = tmp_path / "cutoffs.log"
    log.write_text("")
    values = {
        "MCP_RUNTIME": runtime,
        "MCP_PACKAGE": PACKAGES[runtime],
        "MCP_LAUNCH": json.dumps(["fake-server"]),
        "UV": str(fake),
        "NPM": str(fake),
        "FAKE_LOG": str(log),
        "FAKE_SOLVES_AT": solves_at,
        **env,
    }
    result = run_entrypoint(base_env(tmp_path / "home", **values), "install", timeout=60)
    return result, log.read_text().split()


def env_dir(tmp_path: Path, runtime: str) -> Path:
    return tmp_path / "home" / runtime / PACKAGES[runtime].replace("/", "+")


def marker(tmp_path: Path, runtime: str) -> str:
    return (env_dir(tmp_path, runtime) / ".catwalk-installed").read_text()


@pytest.mark.parametrize("runtime", ["python", "npm"])
def test_a_resolution_as_of_the_release_is_used_without_retry(tmp_path: Path, fake_installer: Path, runtime: str):
    result, tried = install(tmp_path, fake_installer, runtime, FIRST, MCP_RESOLVED_AT=RESOLVED_AT)
    assert result.returncode == 0, result.stderr
    assert tried == [FIRST]
    assert "retrying" not in result.stderr
    assert marker(tmp_path, runtime) == f"spec={PACKAGES[runtime]}\ncutoff={FIRST}\n"


@pytest.mark.parametrize("runtime", ["python", "npm"])
def test_no_resolution_retries_each_widened_cutoff_in_turn_until_one_resolves(
    tmp_path: Path, fake_installer: Path, runtime: str
):
    result, tried = install(tmp_path, fake_installer, runtime, WIDENED[1], MCP_RESOLVED_AT=RESOLVED_AT)
    assert result.returncode == 0, result.stderr
    assert tried == [FIRST, WIDENED[0], WIDENED[1]]
    package = PACKAGES[runtime]
    retries = [line for line in result.stderr.splitlines() if line.startswith("No resolution of")]
    assert retries == [
        f"No resolution of {package} as of {FIRST}; retrying with dependencies as of {WIDENED[0]}",
        f"No resolution of {package} as of {WIDENED[0]}; retrying with dependencies as of {WIDENED[1]}",
    ]
    assert "WARNING" not in result.stderr
    assert marker(tmp_path, runtime) == f"spec={package}\ncutoff={WIDENED[1]}\n"


@pytest.mark.parametrize(("runtime", "dependency"), [("python", "certifi==2099.1.1"), ("npm", "dep@>=2")])
def test_without_the_opt_in_nothing_resolving_at_the_last_cutoff_fails_naming_the_dependency(
    tmp_path: Path, fake_installer: Path, runtime: str, dependency: str
):
    result, tried = install(tmp_path, fake_installer, runtime, NO_CUTOFF, MCP_RESOLVED_AT=RESOLVED_AT)
    assert result.returncode == 1
    assert tried == [FIRST, *WIDENED], "never without a cutoff unless the user opts in"
    assert f"nothing resolves even as of {WIDENED[-1]}: {dependency} has no release that fits" in result.stderr
    assert "MCP_CUTOFF_FALLBACK=none" in result.stderr and "WITHOUT a cutoff" not in result.stderr
    assert not env_dir(tmp_path, runtime).exists()


# The last resort is taken only on the opt-in (MCP_CUTOFF_FALLBACK=none): these tests opt in.
@pytest.mark.parametrize("runtime", ["python", "npm"])
def test_last_resort_is_no_cutoff_with_a_loud_warning(tmp_path: Path, fake_installer: Path, runtime: str):
    result, tried = install(
        tmp_path, fake_installer, runtime, NO_CUTOFF, MCP_RESOLVED_AT=RESOLVED_AT, MCP_CUTOFF_FALLBACK="none"
    )
    assert result.returncode == 0, result.stderr
    assert tried == [FIRST, *WIDENED, NO_CUTOFF]
    assert f"WARNING: no resolution of {PACKAGES[runtime]} even as of {WIDENED[-1]}: retrying WITHOUT a cutoff" in (
        result.stderr
    )
    assert "not reproducible" in result.stderr
    assert marker(tmp_path, runtime) == f"spec={PACKAGES[runtime]}\ncutoff=\n"


def test_nothing_resolving_even_without_a_cutoff_fails_and_leaves_nothing(tmp_path: Path, fake_installer: Path):
    result, tried = install(
        tmp_path, fake_installer, "python", "never", MCP_RESOLVED_AT=RESOLVED_AT, MCP_CUTOFF_FALLBACK="none"
    )
    assert result.returncode == 1
    assert tried == [FIRST, *WIDENED, NO_CUTOFF]
    assert f"Error: install of {PACKAGES['python']} failed: no version of {PACKAGES['python']} matches (see" in (
        result.stderr
    )
    assert not env_dir(tmp_path, "python").exists()


@pytest.mark.parametrize(
    ("runtime", "failure", "reason"),
    [
        ("npm", "npm error code E404\nnpm error 404 Not Found - GET https://registry.npmjs.org/@fake%2fmcp", "(404)"),
        ("python", "error: fake-mcp was not found in the package registry", "not found on the Python package index"),
        ("python", "error: Failed to build `fake-mcp==1.0.0`", "uv pip install failed with exit code 1"),
    ],
    ids=["npm-404", "pypi-not-found", "build-error"],
)
def test_failures_other_than_no_resolution_are_not_retried(
    tmp_path: Path, fake_installer: Path, runtime: str, failure: str, reason: str
):
    result, tried = install(
        tmp_path, fake_installer, runtime, WIDENED[0], MCP_RESOLVED_AT=RESOLVED_AT, FAKE_FAILURE=failure
    )
    assert result.returncode == 1
    assert tried == [FIRST]
    assert reason in result.stderr and "retrying" not in result.stderr
    assert not env_dir(tmp_path, runtime).exists()


@pytest.mark.parametrize("runtime", ["python", "npm"])
def test_an_explicit_exclude_newer_is_the_users_choice_and_never_widened(
    tmp_path: Path, fake_installer: Path, runtime: str
):
    result, tried = install(
        tmp_path, fake_installer, runtime, WIDENED[0], MCP_RESOLVED_AT=RESOLVED_AT, MCP_EXCLUDE_NEWER=FIRST
    )
    assert result.returncode == 1
    assert tried == [FIRST]
    assert f"no version of {PACKAGES[runtime]} matches as of {FIRST}" in result.stderr
    assert "retrying" not in result.stderr
