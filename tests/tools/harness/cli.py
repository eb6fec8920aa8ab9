"""Local engine harness: `pulumi preview|up|destroy` for a Python Pulumi program, without the CLI.

    python -m tests.tools.harness preview|up|destroy --stack STACK [--state FILE] [--json]
        [--show-secrets] [--project-dir DIR] [--program PATH] [--config-file FILE]
        [--secret KEY=VALUE ...] [--parallel N]
    python -m tests.tools.harness output --stack STACK [--state FILE] [--show-secrets]
        (the last up's stack outputs as JSON, like `pulumi stack output --json`)

The program (default: Pulumi.yaml's `main`, else `infra/`) runs under the SDK's mock monitor
with the stack's config; every dynamic resource goes to its REAL provider (unpickled from
`__provider` as `python -m pulumi.dynamic` does): preview = check + diff, up = check + create /
update / replace / same by the diff, then deletes of what the program no longer registers;
destroy deletes everything in reverse creation order. Components and non-dynamic resources are
simulated (RandomPassword gets a real random value, stable through the state). Providers read
FLY_API_URL / FLY_API_TOKEN from the environment, which the harness passes through untouched.

State: `--state` (default `<project-dir>/.pulumi-state/harness-<stack>.json`, git-ignored);
secrets in it are encrypted (see tests/tools/harness/state.py for why and where the key lives).
Secret config: see tests/tools/harness/stackconfig.py (`--secret KEY=VALUE` or
`CATWALK_HARNESS_SECRET_<KEY>`). Exit status: 0 success, 1 a step or the program failed (the
message names the resource and carries the provider's error), 2 bad usage / config / state.

Steps of independent resources run concurrently, at most `--parallel` (default 4) provider calls
at once; `--parallel 1` gives a deterministic order. The program runs with cwd = its directory,
as the language host runs it; the harness makes no hook into the program.

Python API: `run(command, stack, ...) -> Result` runs in this process, on its own thread and in a
copied contextvars context with fresh SDK settings, so consecutive runs (and set_mocks unit tests
in the same session) do not see each other; modules the program imports stay cached, it changes
the process cwd while it runs, and it is not thread-safe. `run_subprocess(...)` runs the CLI in a
fresh interpreter: the safe default for end-to-end tests (pass `env={"FLY_API_URL": ...}`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from tests.tools.harness.deployment import DEFAULT_PARALLEL, Deployment, DeploymentError
from tests.tools.harness.engine import program_directory, run_program
from tests.tools.harness.providers import Providers
from tests.tools.harness.report import print_report
from tests.tools.harness.stackconfig import ConfigError, load_project, load_stack_config
from tests.tools.harness.state import StateError, StateFile
from tests.tools.harness.values import render

COMMANDS = ("preview", "up", "destroy", "output")
REPO_ROOT = Path(__file__).resolve().parents[3]
LOG = logging.getLogger("catwalk.harness")


@dataclass
class Result:
    """What a run did. `outputs` are rendered: secrets are "[secret]" unless `show_secrets`."""

    command: str
    stack: str
    operations: list[dict[str, str]] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    exit_code: int = 0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def ops(self, op: str | None = None, type_: str | None = None) -> list[dict[str, str]]:
        return [o for o in self.operations if (op is None or o["op"] == op) and (type_ is None or o["type"] == type_)]

    def op_of(self, name: str, type_: str | None = None) -> str:
        """The operation on the resource called `name` (and of `type_`, when names repeat)."""
        found = [o["op"] for o in self.operations if o["name"] == name and (type_ is None or o["type"] == type_)]
        if len(found) != 1:
            raise KeyError(f"{len(found)} operations on {name!r}: {self.operations}")
        return found[0]

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"operations": self.operations, "outputs": self.outputs}
        if self.error is not None:
            doc["error"] = self.error
        return doc


def default_state_path(project_dir: Path, stack: str) -> Path:
    return project_dir / ".pulumi-state" / f"harness-{stack}.json"


def run(
    command: str,
    stack: str,
    *,
    project_dir: str | Path = ".",
    program: str | Path | None = None,
    config_file: str | Path | None = None,
    state: str | Path | None = None,
    secrets: Mapping[str, str] | None = None,
    show_secrets: bool = False,
    parallel: int = DEFAULT_PARALLEL,
) -> Result:
    """Run `command` in this process. Never raises for a failed step: see `Result.error`."""
    if command not in COMMANDS:
        raise ValueError(f"command must be one of {COMMANDS}, not {command!r}")
    result = Result(command=command, stack=stack)
    project_path = Path(project_dir).resolve()
    try:
        project = load_project(project_path, Path(program) if program else None)
        store = StateFile(Path(state) if state else default_state_path(project.directory, stack))
        saved = store.load(project.name, stack)
        if command == "output":  # the saved stack outputs, as `pulumi stack output --json`
            result.outputs = render(saved.outputs, show_secrets)
            return result
        cfg_path = Path(config_file) if config_file else project.directory / f"Pulumi.{stack}.yaml"
        config = load_stack_config(cfg_path, project.name, secrets or {}, os.environ)
    except (ConfigError, StateError) as exc:
        result.error, result.exit_code = str(exc), 2
        return result

    providers = Providers(config=dict(config.values), project=project.name)
    deployment = Deployment(saved, store, providers, preview=command == "preview", parallel=parallel)
    stack_outputs: dict[str, Any] = {}
    try:
        if command == "destroy":
            with program_directory(project.main):
                deployment.destroy()
        else:
            try:
                stack_outputs = run_program(
                    project.main,
                    project.name,
                    stack,
                    config.values,
                    config.secret_keys,
                    deployment,
                    command == "preview",
                    project.directory,
                    LOG,
                )
            except Exception as exc:
                if deployment.error is None:  # the program itself failed, not a provider step
                    raise DeploymentError(f"the program failed: {type(exc).__name__}: {exc}") from exc
            if deployment.error is None:
                with program_directory(project.main):
                    deployment.finish(stack_outputs)
    except DeploymentError as exc:
        deployment.error = deployment.error or str(exc)
    except StateError as exc:
        deployment.error = str(exc)

    result.operations = [{"type": o.type, "name": o.name, "op": o.op} for o in deployment.operations]
    result.outputs = add_local_urls(render(stack_outputs, show_secrets))
    if deployment.error is not None:
        result.error, result.exit_code = deployment.error, 1
    return result


def emulated_machines(api_url: str | None) -> list[dict[str, Any]]:
    """The machines of the Fly emulator at `api_url` with where each runs locally; [] for a real Fly API."""
    if not api_url:
        return []
    try:
        with urllib.request.urlopen(api_url.rstrip("/") + "/_emulator/machines", timeout=5) as response:
            return json.load(response).get("machines", [])
    except (OSError, ValueError):
        return []


def emulated_proxy_url(api_url: str, app: str) -> str | None:
    """The emulator's proxy URL for `app` (balanced over its machines as `<app>.fly.dev` is); None without a proxy."""
    try:
        with urllib.request.urlopen(f"{api_url.rstrip('/')}/_emulator/proxy/apps/{app}", timeout=5) as response:
            return json.load(response).get("url")
    except (OSError, ValueError):
        return None


def add_local_urls(outputs: dict[str, Any]) -> dict[str, Any]:
    """Give each server's outputs a `local_url`, so a test can talk MCP to what the stack deployed under the
    emulator's --run-machines: its app's /mcp through the emulator's proxy (every machine of the server, balanced
    and replayed as on Fly), or, when the emulator serves no proxy, the loopback /mcp of the app's started
    machine (each machine's own address stays in `/_emulator/machines`). Leaves others as they are."""
    api_url = os.environ.get("FLY_API_URL") or ""
    machines = emulated_machines(api_url)
    running = {
        m["app"]: m["process"]["url"]
        for m in machines
        if m.get("state") == "started" and (m.get("process") or {}).get("url")
    }
    apps = {str(v["app"]) for v in outputs.values() if isinstance(v, dict) and v.get("app") in running}
    urls = {app: emulated_proxy_url(api_url, app) or running[app] for app in apps}
    return {
        name: {**value, "local_url": urls[value["app"]] + "/mcp"}
        if isinstance(value, dict) and value.get("app") in urls
        else value
        for name, value in outputs.items()
    }


def run_subprocess(
    command: str,
    stack: str,
    *,
    project_dir: str | Path = ".",
    program: str | Path | None = None,
    config_file: str | Path | None = None,
    state: str | Path | None = None,
    secrets: Mapping[str, str] | None = None,
    show_secrets: bool = False,
    parallel: int = DEFAULT_PARALLEL,
    env: Mapping[str, str] | None = None,
    timeout: float = 600,
) -> Result:
    """Run the CLI in a fresh interpreter (no SDK global state shared with the caller)."""
    # Paths are the caller's (relative to its cwd); the child runs in the repository root.
    argv = [
        sys.executable,
        "-m",
        "tests.tools.harness",
        command,
        "--stack",
        stack,
        "--json",
        "--project-dir",
        str(Path(project_dir).resolve()),
    ]
    for flag, value in (("--program", program), ("--config-file", config_file), ("--state", state)):
        if value is not None:
            argv += [flag, str(Path(value).resolve())]
    for key, value in (secrets or {}).items():
        argv += ["--secret", f"{key}={value}"]
    if show_secrets:
        argv.append("--show-secrets")
    argv += ["--parallel", str(parallel)]
    proc = subprocess.run(
        argv,
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    try:
        doc = json.loads(proc.stdout)
    except ValueError:
        return Result(
            command,
            stack,
            error=f"harness exited {proc.returncode}: {proc.stderr.strip()[-2000:]}",
            exit_code=proc.returncode or 1,
        )
    return Result(
        command,
        stack,
        operations=doc["operations"],
        outputs=doc["outputs"],
        error=doc.get("error"),
        exit_code=proc.returncode,
    )


def _parse_secret(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--secret expects KEY=VALUE, got {text.split('=')[0]!r}")
    return key, value


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.tools.harness", description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=COMMANDS)
    ap.add_argument("--stack", required=True)
    ap.add_argument("--state", help="state file (default: <project-dir>/.pulumi-state/harness-STACK.json)")
    ap.add_argument("--json", action="store_true", help="print {operations, outputs} as JSON")
    ap.add_argument("--show-secrets", action="store_true", help="print secret outputs in plaintext")
    ap.add_argument("--project-dir", default=".", help="directory holding Pulumi.yaml (default: .)")
    ap.add_argument("--program", help="program directory or file (default: Pulumi.yaml main, else infra/)")
    ap.add_argument("--config-file", help="stack config (default: <project-dir>/Pulumi.STACK.yaml)")
    ap.add_argument(
        "--secret",
        action="append",
        type=_parse_secret,
        default=[],
        metavar="KEY=VALUE",
        help="plaintext for a secure config value (repeatable)",
    )
    ap.add_argument(
        "--parallel",
        type=int,
        default=DEFAULT_PARALLEL,
        help=f"provider calls at once (default {DEFAULT_PARALLEL}; 1 = deterministic order)",
    )
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = ap.parse_args(argv)

    logging.basicConfig(
        stream=sys.stderr, level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s"
    )
    result = run(
        args.command,
        args.stack,
        project_dir=args.project_dir,
        program=args.program,
        config_file=args.config_file,
        state=args.state,
        secrets=dict(args.secret),
        show_secrets=args.show_secrets,
        parallel=args.parallel,
    )
    if args.command == "output" and result.exit_code == 0:
        print(json.dumps(result.outputs, indent=2, ensure_ascii=False))
    elif args.json:
        print(json.dumps(result.to_json(), indent=2, ensure_ascii=False))
    elif result.exit_code != 2:  # nothing ran on a usage / config / state error
        print_report(Console(), args.command, args.stack, result.operations, result.outputs, None)
    if result.error:
        print(f"error: {result.error}", file=sys.stderr)
    return result.exit_code
