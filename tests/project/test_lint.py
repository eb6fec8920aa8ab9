"""deploy/ must lint clean and keep LF endings: the image runs these files on Linux."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SHELL_SCRIPTS = sorted([*ROOT.glob("deploy/*.sh"), *ROOT.glob("bench/*.sh")])
DEPLOY_FILES = sorted(p for p in (ROOT / "deploy").rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def _tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{name} is missing from the venv: install requirements-dev.txt")
    return str(path)


def test_there_are_shell_scripts_to_lint() -> None:
    assert ROOT / "deploy" / "entrypoint.sh" in SHELL_SCRIPTS


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda p: p.name)
def test_shell_scripts_pass_shellcheck_as_posix_sh(script: Path) -> None:
    result = subprocess.run(
        [_tool("shellcheck"), "--shell=sh", "--severity=style", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


JS_FILES = sorted((ROOT / "deploy").rglob("*.js"))


def test_the_installers_javascript_lives_in_js_files() -> None:
    assert {p.name for p in JS_FILES} >= {"playwright_paths.js", "install_scripts.js", "node_check.js"}
    assert "node -e" not in (ROOT / "deploy" / "entrypoint.sh").read_text()


@pytest.mark.parametrize("script", JS_FILES, ids=lambda p: p.name)
def test_javascript_files_parse_and_run_strict(script: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH: the entrypoint's JavaScript cannot be checked")
    result = subprocess.run([node, "--check", str(script)], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert '"use strict";' in script.read_text().splitlines()[:12]


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [_tool("hadolint"), str(ROOT / "deploy" / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", DEPLOY_FILES, ids=lambda p: p.relative_to(ROOT / "deploy").as_posix())
def test_deploy_files_have_lf_endings(path: Path) -> None:
    assert b"\r" not in path.read_bytes(), f"{path} has CR characters (CRLF endings break sh in the image)"


LF_FILES = [
    "deploy/entrypoint.sh",
    "deploy/Dockerfile",
    "deploy/catwalk_runtime/gateway.py",
    "deploy/catwalk_runtime/js/node_check.js",
]


@pytest.mark.parametrize("path", LF_FILES)
def test_gitattributes_force_lf_for_deploy_files(path: str) -> None:
    result = subprocess.run(
        ["git", "check-attr", "eol", "--", path], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip().endswith("eol: lf"), result.stdout


def test_entrypoint_is_executable_with_a_posix_shebang() -> None:
    script = ROOT / "deploy" / "entrypoint.sh"
    assert os.access(script, os.X_OK)
    assert script.read_text().splitlines()[0] == "#!/bin/sh"
