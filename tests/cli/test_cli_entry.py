"""The `catwalk` console command and `python -m infra.cli` are the same command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import infra.cli.validate
from components.errors import CatwalkError
from infra.cli import main

CATWALK = Path(sys.executable).parent / "catwalk"  # installed by `pip install -e .` ([project.scripts])
ENTRIES = {"catwalk": [str(CATWALK)], "python -m infra.cli": [sys.executable, "-m", "infra.cli"]}

VALID = """config:
  catwalk:appPrefix: acme
  catwalk:servers:
    - name: memory
      package: "@modelcontextprotocol/server-memory"
"""
INVALID = """config:
  catwalk:regoin: iad
  catwalk:servers:
    - name: memory
      package: "@modelcontextprotocol/server-memory"
      count: 0
"""


def run(entry: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ENTRIES[entry], *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("entry", ENTRIES)
def test_help_lists_run_detect_validate_and_status(entry):
    done = run(entry, "--help")
    assert done.returncode == 0, done.stderr
    for command in ("run", "detect", "validate", "status"):
        assert f"    {command} " in done.stdout
    assert done.stdout.startswith(f"usage: {entry} ")


@pytest.mark.parametrize("entry", ENTRIES)
def test_validate_accepts_a_valid_stack_file_and_names_every_problem_of_a_bad_one(entry, tmp_path):
    (tmp_path / "Pulumi.dev.yaml").write_text(VALID)
    ok = run(entry, "validate", "Pulumi.dev.yaml", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "valid: 1 server(s): memory (@modelcontextprotocol/server-memory)" in ok.stdout

    (tmp_path / "Pulumi.bad.yaml").write_text(INVALID)
    bad = run(entry, "validate", "Pulumi.bad.yaml", "--json", cwd=tmp_path)
    assert bad.returncode == 1
    problems = {(p["server"], p["field"]) for p in json.loads(bad.stdout)}
    assert problems == {(None, "regoin"), ("memory", "count")}


@pytest.mark.parametrize("entry", ENTRIES)
def test_detect_of_a_custom_command_resolves_offline(entry):
    done = run(entry, "detect", "--runtime", "custom", "node server.js --stdio", "--json")
    assert done.returncode == 0, done.stderr
    [result] = json.loads(done.stdout)
    assert (result["runtime"], result["launch"]) == ("custom", ["node", "server.js", "--stdio"])


def test_an_error_catwalk_raises_is_one_line_with_its_hint_and_exit_status_1(monkeypatch, capsys):
    class Unreadable(CatwalkError):
        hint = "check the file's permissions"

    def refuse(path):
        raise Unreadable(f"{path}: cannot be read")

    monkeypatch.setattr(infra.cli.validate, "load_stack_file", refuse)
    assert main(["validate", "Pulumi.x.yaml"]) == 1
    assert capsys.readouterr().err == "error: Pulumi.x.yaml: cannot be read (check the file's permissions)\n"
