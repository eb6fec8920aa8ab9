"""Cold start of a container: a baked image against the unified image installing the same server at start.

Both images are the real ones, built on a Docker engine by the image provider as `pulumi up` builds them
(the unified image from `deploy/`, then one baked image per server on its pushed digest), on the image
tier's engine and stand-in bases (tests/tools/docker_engine). Per start, the clock runs from `docker run` to
the first `tools/list` answer through the gateway (`components.mcpcheck`, polling every 50 ms), the same for
both ways; each start is a new container, so the install-at-start one begins with an empty MCP_HOME and no
installer cache, as a new Fly machine does, and the baked one starts what its build installed:

* ``baked``: a container of the server's baked image.
* ``install-at-start``: a container of the unified image with MCP_RUNTIME / MCP_PACKAGE / MCP_RESOLVED_AT.

Run by hand as root (it starts the engine; the first run builds the stand-ins and images, later runs reuse
them): ``.venv/bin/python -m bench.container_cold_start [--repeats N]``. Writes
bench/results/container_cold_start.{md,json}; ``--render`` rebuilds the Markdown from the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
NAME = "container_cold_start"
TOKEN = "bench-container-token"
# server: (spec detection pins, extra container env)
SERVERS = {
    "mcp-server-time": ("mcp-server-time==2026.10.19", {"MCP_ARGS": '["--local-timezone", "UTC"]'}),
    "@modelcontextprotocol/server-memory": ("@modelcontextprotocol/server-memory@2026.8.31", {}),
}
START_TIMEOUT = 300


def summarize(seconds: list[float | None]) -> dict:
    """Median, range and failures of one way's starts (None: no answer in time)."""
    ok = [s for s in seconds if s is not None]
    return {
        "runs": len(seconds),
        "failed": len(seconds) - len(ok),
        "median": round(statistics.median(ok), 3) if ok else None,
        "min": round(min(ok), 3) if ok else None,
        "max": round(max(ok), 3) if ok else None,
    }


def ratio(row: dict) -> float | None:
    """install-at-start median over baked median: how many times faster a baked container answers."""
    slow, fast = row["install-at-start"]["median"], row["baked"]["median"]
    return round(slow / fast, 1) if slow and fast else None


def _cell(summary: dict) -> str:
    if summary["median"] is None:
        return f"fails {summary['failed']}/{summary['runs']}"
    failed = f", {summary['failed']} failed" if summary["failed"] else ""
    return f"{summary['median']:.2f} s ({summary['min']:.2f}–{summary['max']:.2f}{failed})"


def markdown(report: dict) -> str:
    lines = [
        "# Cold start of a container: baked image vs install at start",
        "",
        f"{report['date']}, catwalk {report['commit']}, engine {report['engine']}, "
        f"1-min load {report['load']}. `docker run` → first `tools/list` answer, {report['repeats']} starts each.",
        "",
        "| server | install-at-start | baked | install-at-start / baked |",
        "|---|---|---|---|",
    ]
    for row in report["rows"]:
        value = ratio(row)
        shown = f"**{value}×**" if value is not None else "—"
        cells = [f"`{row['server']}` {row['version']}", _cell(row["install-at-start"]), _cell(row["baked"]), shown]
        lines.append(f"| {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


def write(report: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{NAME}.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / f"{NAME}.md").write_text(markdown(report))


def timed_start(eng, image: str, env: dict[str, str]) -> float | None:
    """Seconds from `docker run` to the first tools/list answer (None when none came in time)."""
    from components.mcpcheck import check
    from tests.tools.docker_engine.containers import running

    started = time.monotonic()
    with running(eng, image, env={**env, "MCP_AUTH_TOKEN": TOKEN}) as box:
        answer = check(f"{box.url}/mcp", token=TOKEN, timeout=START_TIMEOUT, wait_until_up=True, poll_interval=0.05)
        took = time.monotonic() - started
    return took if answer.ok and answer.tools else None


def run(repeats: int) -> dict:
    # Imported here: --render and the tests of the table need no engine.
    import subprocess

    from components.detect import detect
    from components.detect.models import iso_utc
    from components.image import ImageProvider
    from components.image.provider import baked_from_spec, context_inputs
    from tests.tools.docker_engine import standins
    from tests.tools.docker_engine.engine import engine, provider_environment

    rows = []
    with engine() as eng, tempfile.TemporaryDirectory(prefix="bench-containers-") as work:
        for line in [*eng.notes, *standins.ensure(eng, standins.base_images(ROOT / "deploy" / "Dockerfile"))]:
            print(line, flush=True)
        os.environ.update(provider_environment(eng, Path(work)))
        provider = ImageProvider()
        checked = provider.check({}, context_inputs(app="bench-unified", context_dir=ROOT / "deploy"))
        unified = provider.create(checked.inputs)
        base = unified.outs["image_ref"]
        print(f"unified image {base}", flush=True)
        for server, (spec, extra) in SERVERS.items():
            found = detect(spec)
            app = "bench-" + server.strip("@").replace("/", "-")
            inputs = {"kind": "baked", "app": app, "base": base, **baked_from_spec(found)}
            baked = provider.create(provider.check({}, inputs).inputs).outs["image_ref"]
            print(f"{server}: baked {baked}", flush=True)
            install_env = {
                **extra,
                "MCP_RUNTIME": found.runtime,
                "MCP_PACKAGE": found.pinned,
                "MCP_RESOLVED_AT": iso_utc(found.resolved_at),
            }
            times: dict[str, list[float | None]] = {"baked": [], "install-at-start": []}
            for i in range(repeats):  # alternate, so both ways see the same load
                times["baked"].append(timed_start(eng, baked, extra))
                times["install-at-start"].append(timed_start(eng, base, install_env))
                print(f"{server} #{i + 1}: baked {times['baked'][-1]}, install {times['install-at-start'][-1]}")
            rows.append(
                {
                    "server": server,
                    "version": found.version,
                    **{way: summarize(values) for way, values in times.items()},
                    "seconds": times,
                }
            )
        engine_version = eng.docker("version", "--format", "{{.Server.Version}}").stdout.strip()
        driver = eng.docker("info", "--format", "{{.Driver}}").stdout.strip()
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit or "unknown",
        "engine": f"Docker {engine_version} ({driver})",
        "load": f"{os.getloadavg()[0]:.1f}",
        "repeats": repeats,
        "rows": rows,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--render", action="store_true", help="rebuild the Markdown from the JSON, run nothing")
    args = ap.parse_args()
    report = json.loads((RESULTS / f"{NAME}.json").read_text()) if args.render else run(args.repeats)
    write(report)
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
