"""catwalk_runtime.install's policy on its own: how an installer's failure reads, and the cutoff's widening."""

from __future__ import annotations

from pathlib import Path

import pytest

from catwalk_runtime.errors import InstallFailed, Unresolved
from catwalk_runtime.install import Install


def job(tmp_path: Path, runtime: str = "npm", package: str = "@fake/mcp@1.0.0", **environ: str) -> Install:
    return Install(runtime, package, tmp_path / "env", tmp_path, {"PATH": "/usr/bin:/bin", **environ})


def fails_with(output: str) -> list[str]:
    return ["sh", "-c", f"echo '{output}'; exit 1"]


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        ("npm error code E404", "@fake/mcp@1.0.0 was not found on the npm registry (404)"),
        ("'x' is not in this registry.", "@fake/mcp@1.0.0 was not found on the npm registry (404)"),
        ("error: x was not found in the package registry", "@fake/mcp@1.0.0 was not found on the Python package index"),
        ("gyp ERR! build error", "npm install failed with exit code 1 (see its output above)"),
    ],
)
def test_an_installers_failure_becomes_one_reason(tmp_path: Path, output: str, reason: str) -> None:
    with pytest.raises(InstallFailed) as failed:
        job(tmp_path).run("npm install", fails_with(output))
    assert str(failed.value) == reason


def test_no_resolution_as_of_a_release_cutoff_asks_for_a_later_one(tmp_path: Path) -> None:
    install = job(tmp_path, MCP_RESOLVED_AT="2026-10-21T19:41:57Z")
    install.compute_cutoff()
    assert install.cutoff == "2026-10-21T20:41:57Z"
    with pytest.raises(Unresolved):
        install.run("npm install", fails_with("npm error code ETARGET"))
    with pytest.raises(InstallFailed, match="matches as of 2026-10-21T20:41:57Z"):  # a rebuild never widens
        install.run("npm rebuild", fails_with("npm error code ETARGET"), widen=False)


def test_no_resolution_with_an_explicit_cutoff_is_final(tmp_path: Path) -> None:
    install = job(tmp_path, MCP_EXCLUDE_NEWER="2026-01-01T00:00:00Z")
    install.compute_cutoff()
    with pytest.raises(InstallFailed, match=r"no version of @fake/mcp@1\.0\.0 matches as of 2026-01-01T00:00:00Z"):
        install.run("npm install", fails_with("No matching version found"))


def test_widening_tries_a_day_a_week_a_month_then_fails_naming_the_dependency(tmp_path: Path) -> None:
    install = job(tmp_path, MCP_RESOLVED_AT="2026-10-21T19:41:57Z")
    install.compute_cutoff()
    with pytest.raises(Unresolved):
        install.run(
            "uv pip install", fails_with("No solution found: Because there is no version of certifi>=2026.10.22 and x")
        )
    tried = []
    for _ in range(3):
        install.widen_cutoff()
        tried.append(install.cutoff)
    assert tried == ["2026-10-22T19:41:57Z", "2026-10-28T19:41:57Z", "2026-11-20T19:41:57Z"]
    with pytest.raises(InstallFailed, match=r"even as of 2026-11-20T19:41:57Z: certifi>=2026\.10\.22 has no release"):
        install.widen_cutoff()


def test_widening_ends_without_a_cutoff_only_on_the_opt_in(tmp_path: Path, capsys) -> None:
    install = job(tmp_path, MCP_RESOLVED_AT="2026-10-21T19:41:57Z", MCP_CUTOFF_FALLBACK="none")
    install.compute_cutoff()
    tried = []
    for _ in range(4):
        install.widen_cutoff()
        tried.append(install.cutoff)
    assert tried == ["2026-10-22T19:41:57Z", "2026-10-28T19:41:57Z", "2026-11-20T19:41:57Z", ""]
    assert "retrying WITHOUT a cutoff" in capsys.readouterr().err


def test_a_missing_installer_is_a_failure_naming_it(tmp_path: Path) -> None:
    with pytest.raises(InstallFailed, match="uv venv failed with exit code 127"):
        job(tmp_path, "python", "x==1").run("uv venv", [str(tmp_path / "no-such-uv"), "venv"])
