"""What a newcomer relies on: Pulumi finds the venv and our code, and CI runs the README's test command."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_pulumi_project_uses_the_repo_venv_with_pip_and_a_local_file_backend():
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert project["name"] == "catwalk"
    assert project["main"] == "infra/"
    assert project["runtime"] == {"name": "python", "options": {"toolchain": "pip", "virtualenv": ".venv"}}
    assert project["backend"]["url"].startswith("file://")
    assert (ROOT / ".pulumi-state").is_dir(), "the file backend's directory must exist on a fresh clone"


def test_provider_host_venv_in_the_program_directory_is_the_repo_venv():
    # The engine starts `python -m pulumi.dynamic` from infra/ with $PWD/.venv (pulumi/pulumi#7061).
    link = ROOT / "infra" / ".venv"
    assert link.is_symlink() and Path(link.readlink()) == Path("../.venv")


def test_pulumi_installs_runtime_deps_and_this_project_from_the_program_directory():
    lines = (ROOT / "infra" / "requirements.txt").read_text().split("\n")
    assert "-r ../requirements.txt" in lines and "-e .." in lines


def test_program_imports_components_when_started_like_the_language_host(tmp_path):
    # The host runs the program with cwd infra/ and only '.' on sys.path: our code must come from the venv.
    code = "import sys; sys.path[0] = '.'; import components.config, infra.cli; print(components.__file__)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT / "infra", capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).is_relative_to(ROOT)


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```sh\n(.*?)```", readme, re.S).group(1).splitlines()
    commands = [line.split("#")[0].strip() for line in block if line.strip()]
    assert commands[0] == "pulumi up"
    test_command = commands[1]
    ci = (ROOT / ".ci" / "run").read_text()
    assert f"exec {test_command}\n" in ci


def _run_test_script(
    tmp_path: Path, pytest_exit: int, failing_tool: str | None = None
) -> subprocess.CompletedProcess[str]:
    """scripts/test in a copy of the tree whose venv tools are stand-ins: pip and the linters succeed
    (but ``failing_tool``, which exits 3), pytest exits with ``pytest_exit`` and leaves a mark."""
    (tmp_path / "scripts").mkdir(parents=True)
    (tmp_path / "scripts" / "test").write_text((ROOT / "scripts" / "test").read_text())
    (tmp_path / "scripts" / "test").chmod(0o755)
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    stand_in = f'#!/bin/sh\nif [ "$1 $2" = "-m pytest" ]; then touch pytest-ran; exit {pytest_exit}; fi\nexit 0\n'
    for tool in ("python", "ruff", "pyright", "mypy"):
        (bin_dir / tool).write_text(stand_in if tool != failing_tool else "#!/bin/sh\nexit 3\n")
        (bin_dir / tool).chmod(0o755)
    return subprocess.run(
        ["bash", str(tmp_path / "scripts" / "test")], capture_output=True, text=True, timeout=60, check=False
    )


def test_test_command_fails_when_pytest_collects_nothing(tmp_path):
    done = _run_test_script(tmp_path, pytest_exit=5)
    assert done.returncode == 1
    assert "collected no tests" in done.stderr


def test_test_command_passes_on_pytests_own_exit_status(tmp_path):
    assert _run_test_script(tmp_path / "ok", pytest_exit=0).returncode == 0
    assert _run_test_script(tmp_path / "failed", pytest_exit=1).returncode == 1


def test_a_type_error_fails_the_test_command_before_pytest_runs(tmp_path):
    done = _run_test_script(tmp_path / "type-error", pytest_exit=0, failing_tool="pyright")
    assert done.returncode == 3
    assert not (tmp_path / "type-error" / "pytest-ran").exists()
    assert _run_test_script(tmp_path / "ok", pytest_exit=0).returncode == 0
    assert (tmp_path / "ok" / "pytest-ran").exists()
