"""catwalk's command line: `catwalk run|detect|validate|status` (also `python -m infra.cli …`).

One module per command, each exposing `add_parser(subparsers)`: it registers its sub-parser and sets
`func=handler` on it; the handler takes the parsed namespace and returns the process exit status.
Modules are discovered, so adding a command is adding a file.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from components.errors import CatwalkError, with_hint


def build_parser(prog: str = "catwalk") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="catwalk command-line tools")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        add_parser = getattr(module, "add_parser", None)
        if add_parser is not None:
            add_parser(commands)
    return parser


def main(argv: list[str] | None = None, prog: str = "catwalk") -> int:
    """Run one command; an error catwalk raises on purpose is shown as one line with its hint, exit 1."""
    args = build_parser(prog).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CatwalkError as exc:
        print(f"error: {with_hint(str(exc), exc)}", file=sys.stderr)
        return 1
