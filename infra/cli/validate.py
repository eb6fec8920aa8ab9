"""`validate [FILE] [--json]`: check a stack file through the config model, offline.

No registry, Fly or Pulumi engine is touched: this is the fast check to run before `pulumi preview`. A valid
config may still get warnings (on stderr): a server whose data would be lost or split between machines.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from components import storage
from components.config import ConfigError, Problem, load_stack_file


def default_stack_file(root: Path = Path()) -> Path:
    """`Pulumi.$PULUMI_STACK.yaml`, else the only `Pulumi.<stack>.yaml` in the project."""
    stack = os.environ.get("PULUMI_STACK")
    if stack:
        return root / f"Pulumi.{stack}.yaml"
    candidates = sorted(p for p in root.glob("Pulumi.*.yaml") if p.name != "Pulumi.yaml")
    if len(candidates) == 1:
        return candidates[0]
    names = ", ".join(p.name for p in candidates) or "none found"
    raise ConfigError([Problem(server=None, field="FILE", error=f"name the stack file or set PULUMI_STACK ({names})")])


def handle(args) -> int:
    try:
        path = Path(args.file) if args.file else default_stack_file()
        stack = load_stack_file(path)
    except ConfigError as exc:
        if args.json:
            print(json.dumps([p.model_dump() for p in exc.problems], indent=2))
        else:
            for problem in exc.problems:
                print(problem, file=sys.stderr)
        return 1
    warnings = [
        Problem(server=server.name, field=field, error=warning)
        for server in stack.servers
        for field, warning in storage.warnings(server)
    ] + stack.oauth_warnings()
    if args.json:
        print("[]")
    else:
        for warning in warnings:
            print(f"warning: {warning}", file=sys.stderr)
        listed = ", ".join(f"{s.name} ({s.package or 'custom command'})" for s in stack.servers) or "no servers"
        print(f"{path}: valid: {len(stack.servers)} server(s): {listed}")
    return 0


def add_parser(commands) -> None:
    parser = commands.add_parser("validate", help="check a stack file offline", description=__doc__)
    parser.add_argument("file", nargs="?", help="stack file (default: Pulumi.$PULUMI_STACK.yaml)")
    parser.add_argument("--json", action="store_true", help="print problems as a JSON list")
    parser.set_defaults(func=handle)
