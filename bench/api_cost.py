"""API cost: Fly API calls per ``up`` for 1, 10 and 50 servers, and for a no-op second ``up``.

Each size gets a fresh Fly emulator (``tests/tools/fly_emulator``, in-process, machines not run) and a fresh
state; the real Pulumi program (``infra/``) runs with its real providers through ``tests.tools.harness`` in a
subprocess. The stack file is generated into a temporary directory: N custom-command servers on a prebuilt
``catwalk:image`` with ``catwalk:verify: false``, so neither a registry nor a Docker engine is needed. Calls are
read from the emulator's ``/_emulator/calls`` and counted by method and by endpoint (ids and names folded).
Ratios are against the 1-server baseline measured in the same run.

Run by hand: ``.venv/bin/python -m bench.api_cost [--sizes 1,10,50]``. Writes bench/results/api_cost.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timezone
from importlib.metadata import version as dist_version
from pathlib import Path

import yaml

from tests.tools.fly_emulator.fixture import MUTATING, running_emulator
from tests.tools.harness import run_subprocess
from tests.tools.stack_files import emulator_env

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
STACK = "bench"
PREFIX = "catwalk-bench"
IMAGE = "registry.fly.io/catwalk-bench-images:local"


def stack_config(count: int) -> dict:
    """A stack of ``count`` custom-command servers that deploys without a registry or a Docker engine."""
    return {
        "config": {
            "catwalk:appPrefix": PREFIX,
            "catwalk:org": "personal",
            "catwalk:region": "iad",
            "catwalk:image": IMAGE,
            "catwalk:verify": False,
            "catwalk:servers": [
                {"name": f"s{i:02d}", "command": ["python", "-m", "bench_server"], "args": ["--id", str(i)]}
                for i in range(1, count + 1)
            ],
        }
    }


def endpoint(path: str) -> str:
    """``/v1/apps/catwalk-bench-s07/machines/3d8d…/wait`` → ``/v1/apps/{app}/machines/{id}/wait``."""
    path = re.sub(r"^/v1/apps/[^/]+", "/v1/apps/{app}", path)
    path = re.sub(r"/(machines|volumes|secrets|ips|leases?)/[^/]+", r"/\1/{id}", path)
    return path


def tally(calls: list[dict]) -> dict:
    """Counts of one ``up``'s calls: total, by method, by method + endpoint, mutating, and failed ones."""
    by_method = Counter(c["method"] for c in calls)
    by_endpoint = Counter(f"{c['method']} {endpoint(c['path'])}" for c in calls)
    return {
        "total": len(calls),
        "mutating": sum(c["method"] in MUTATING for c in calls),
        "by_method": dict(sorted(by_method.items())),
        "by_endpoint": dict(sorted(by_endpoint.items())),
        "non_2xx": sum(not 200 <= int(c.get("status") or 0) < 300 for c in calls),
    }


def measure(count: int, parallel: int, work: Path) -> dict:
    """Two ``up``s of a ``count``-server stack against a fresh emulator: the first creates, the second is a no-op."""
    config = work / f"Pulumi.{STACK}.yaml"
    config.write_text(yaml.safe_dump(stack_config(count), sort_keys=False))
    state = work / "state.json"
    with running_emulator() as emulator:
        env = emulator_env(emulator)
        runs = {}
        for label in ("first", "noop"):
            emulator.clear_calls()
            start = time.monotonic()
            result = run_subprocess(
                "up", STACK, project_dir=ROOT, config_file=config, state=state, env=env, parallel=parallel, timeout=1800
            )
            elapsed = time.monotonic() - start
            if not result.ok:
                raise RuntimeError(f"{label} up of {count} servers failed: {result.error}")
            ops = Counter(o["op"] for o in result.operations)
            runs[label] = {
                "seconds": round(elapsed, 2),
                "operations": dict(sorted(ops.items())),
                **tally(emulator.calls()),
            }
        live = [m for m in emulator.machines() if m["state"] != "destroyed"]
        runs["machines"] = len(live)
    return {"servers": count, **runs}


def ratios(rows: list[dict]) -> None:
    """Per row: calls relative to the 1-server baseline of this run, and calls per server."""
    base = next((r for r in rows if r["servers"] == 1), None)
    for row in rows:
        row["calls_per_server"] = round(row["first"]["total"] / row["servers"], 2)
        if base:
            row["ratio_total"] = round(row["first"]["total"] / base["first"]["total"], 2)
            row["ratio_per_server"] = round(row["calls_per_server"] / base["calls_per_server"], 3)


def markdown(report: dict) -> str:
    v = report["versions"]
    rows = report["rows"]
    lines = [
        "# API cost: Fly API calls per `up`",
        "",
        f"Run {report['date']} against the Fly emulator (`tests/tools/fly_emulator`), the real program `infra/` and "
        f"its real providers via `tests.tools.harness` (parallel {report['parallel']}, client rate limit off). Python "
        f"{v['python']}, pulumi {v['pulumi']}, catwalk {v['catwalk']}. Produced by `bench/api_cost.py`.",
        "",
        "Stack: N custom-command servers, prebuilt `catwalk:image`, `catwalk:verify: false`, one region, one "
        "machine each. *First up* starts from empty Fly and empty state; *no-op up* repeats it unchanged.",
        "",
        "| servers | first up: calls | GET | POST | other | ×1-server | calls/server | ×per-server "
        "| first up s | no-op up: calls | no-op mutating |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        first, noop = r["first"], r["noop"]
        other = first["total"] - first["by_method"].get("GET", 0) - first["by_method"].get("POST", 0)
        lines.append(
            f"| {r['servers']} | {first['total']} | {first['by_method'].get('GET', 0)} "
            f"| {first['by_method'].get('POST', 0)} | {other} | {r.get('ratio_total', '—')}× "
            f"| {r['calls_per_server']} | {r.get('ratio_per_server', '—')}× | {first['seconds']:.1f} "
            f"| {noop['total']} | **{noop['mutating']}** |"
        )
    lines += ["", "## Calls of the first up by endpoint", ""]
    endpoints = sorted({e for r in rows for e in r["first"]["by_endpoint"]})
    lines += [
        "| endpoint | " + " | ".join(f"{r['servers']} servers" for r in rows) + " |",
        "|---" * (len(rows) + 1) + "|",
    ]
    for e in endpoints:
        lines.append(f"| `{e}` | " + " | ".join(str(r["first"]["by_endpoint"].get(e, 0)) for r in rows) + " |")
    lines += ["", "## Calls of the no-op up by endpoint", ""]
    endpoints = sorted({e for r in rows for e in r["noop"]["by_endpoint"]})
    if not endpoints:
        lines.append("None: the no-op up read everything from its state and made no Fly API call at all.")
    else:
        lines += [
            "| endpoint | " + " | ".join(f"{r['servers']} servers" for r in rows) + " |",
            "|---" * (len(rows) + 1) + "|",
        ]
    for e in endpoints:
        lines.append(f"| `{e}` | " + " | ".join(str(r["noop"]["by_endpoint"].get(e, 0)) for r in rows) + " |")
    failed = [
        (r["servers"], label, r[label]["non_2xx"]) for r in rows for label in ("first", "noop") if r[label]["non_2xx"]
    ]
    lines += [
        "",
        "Non-2xx answers (expected ones, such as a 404 for an app that does not exist yet): "
        + (", ".join(f"{n} servers {label} up: {k}" for n, label, k in failed) or "none")
        + ".",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,10,50", help="comma-separated server counts (default 1,10,50)")
    parser.add_argument("--parallel", type=int, default=4, help="harness provider-call parallelism (its default)")
    parser.add_argument("--output", type=Path, default=RESULTS / "api_cost")
    opts = parser.parse_args(argv)
    sizes = sorted({int(s) for s in opts.sizes.split(",")})
    if any(not 1 <= n <= 100 for n in sizes):
        parser.error("--sizes: each size must be 1..100 (catwalk:servers takes at most 100)")

    rows = []
    for count in sizes:
        with tempfile.TemporaryDirectory(prefix=f"api-cost-{count}-") as work:
            row = measure(count, opts.parallel, Path(work))
        rows.append(row)
        print(
            f"{count} servers: first up {row['first']['total']} calls {row['first']['by_method']}, "
            f"no-op up {row['noop']['total']} calls ({row['noop']['mutating']} mutating)",
            flush=True,
        )
    ratios(rows)
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    report = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": {"python": platform.python_version(), "pulumi": dist_version("pulumi"), "catwalk": commit},
        "parallel": opts.parallel,
        "rows": rows,
    }
    opts.output.parent.mkdir(parents=True, exist_ok=True)
    opts.output.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    opts.output.with_suffix(".md").write_text(markdown(report))
    print(opts.output.with_suffix(".md").read_text())
    bad = [r["servers"] for r in rows if r["noop"]["mutating"]]
    if bad:
        print(f"FAIL: the no-op up made mutating calls for {bad} servers", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
