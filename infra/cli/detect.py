"""`detect SPEC [SPEC…] [--json]`: which runtime, pinned package and launch command each spec resolves to.

Asks PyPI and npm (or the configured index/registry), through the same code the Pulumi program runs at
preview. `--json` prints one object per spec: {"spec", "runtime", "package", "version", "launch", "env",
"evidence"}, plus "browser": "chromium (Debian)" for a server that drives a browser; or {"spec", "error"}.
The exit status is 1 when any spec errs.
"""

from __future__ import annotations

import json
import sys

BADGES = {"npm": "📦 npm", "python": "🐍 python", "custom": "⚙️ custom"}


def _table(specs: list[str], results) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="catwalk detect")
    for column in ("spec", "runtime", "pinned package", "launch", "released", "needs a browser"):
        table.add_column(column, overflow="fold")
    for spec, result in zip(specs, results, strict=True):
        if isinstance(result, Exception):
            table.add_row(spec, "❌ error", "[red]see below[/red]", "", "", "")
            continue
        table.add_row(
            spec,
            BADGES[result.runtime],
            result.pinned or result.command or "",
            " ".join(result.launch),
            result.env().get("MCP_RESOLVED_AT", "")[:10],
            result.browser_shown or "no",
        )
    Console(width=max(Console().width, 140)).print(table)


def handle(args) -> int:
    from components.detect import DetectError, detect, detect_many

    browser = None if args.browser is None else args.browser == "true"
    if args.runtime or args.version or browser is not None:
        results = []
        for spec in args.specs:
            try:
                results.append(detect(spec, runtime=args.runtime, version=args.version, browser=browser))
            except DetectError as exc:
                results.append(exc)
    else:
        results = detect_many(args.specs)
    if args.json:
        out = [
            {"spec": spec, "error": str(r)} if isinstance(r, Exception) else r.summary()
            for spec, r in zip(args.specs, results, strict=True)
        ]
        print(json.dumps(out, indent=2, ensure_ascii=False))
    else:
        _table(args.specs, results)
        if args.why:
            for spec, result in zip(args.specs, results, strict=True):
                if not isinstance(result, Exception):
                    print(f"{spec}:\n  " + "\n  ".join(result.evidence))
        for spec, result in zip(args.specs, results, strict=True):
            if isinstance(result, Exception):
                print(f"error: {spec}: {result}", file=sys.stderr)
    return 1 if any(isinstance(r, Exception) for r in results) else 0


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "detect", help="resolve package specs to runtime, version and launch", description=__doc__
    )
    parser.add_argument("specs", nargs="+", metavar="SPEC", help="mcp-server-git, @scope/name, pypi:NAME==1.2 …")
    parser.add_argument("--json", action="store_true", help="print a JSON array, one object per spec")
    parser.add_argument(
        "--runtime", choices=("npm", "python", "custom"), help="force the runtime (custom: SPEC is a command)"
    )
    parser.add_argument("--why", action="store_true", help="print the evidence behind each decision")
    parser.add_argument("--version", help="version or range to resolve (as the stack config's 'version')")
    parser.add_argument(
        "--browser",
        choices=("true", "false"),
        help="whether the server drives a browser, as the stack config's 'browser' (default: detected)",
    )
    parser.set_defaults(func=handle)
