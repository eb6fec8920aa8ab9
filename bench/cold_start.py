"""Cold start: time from process start to the first MCP tools/list answer, three ways, one run.

* ``original``: the original design's entrypoint (bench/baseline_entrypoint.sh) in a fresh container-like
  state: a new venv holding only mcp-proxy 0.13 (so its ``pip install`` cannot touch the project's venv)
  and an empty npm cache, as on a freshly started machine.
* ``install-at-start``: deploy/entrypoint.sh's default action with an empty MCP_HOME and empty uv/npm
  caches: it installs (dependencies as of the release), then serves.
* ``baked``: deploy/entrypoint.sh ``serve`` with the server installed beforehand (what the image does).

Run by hand: ``.venv/bin/python bench/cold_start.py [--repeats N]``. Writes bench/results/cold_start.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

# Client modules are imported before the clock starts: the import is not part of a cold start.
import mcp.client.sse
import mcp.client.streamable_http  # noqa: F401

from components.mcpcheck import check

ROOT = Path(__file__).resolve().parents[1]
ENTRYPOINT = ROOT / "deploy" / "entrypoint.sh"
BASELINE = ROOT / "bench" / "baseline_entrypoint.sh"
RESULTS = ROOT / "bench" / "results"
VENV_BIN = Path(sys.executable).parent
TIMEOUT = 180.0

SERVERS = [
    {"runtime": "python", "package": "mcp-server-time==2026.10.19", "resolved_at": "2026-10-19T06:48:51Z"},
    {"runtime": "python", "package": "mcp-server-git==2026.10.19", "resolved_at": "2026-10-19T06:48:45Z"},
    {
        "runtime": "npm",
        "package": "@modelcontextprotocol/server-memory@2026.8.31",
        "resolved_at": "2026-09-01T22:46:36.382Z",
    },
]


def free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET6) as s:
        s.bind(("::", 0))
        return s.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_") and k != "PORT"}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env['PATH']}"
    env["PORT"] = str(free_port())
    env.update(extra)
    return env


def measure(command: list[str], env: dict[str, str], host: str) -> dict:
    """Start ``command``; poll initialize + tools/list until the first answer or TIMEOUT."""
    with tempfile.TemporaryFile() as log:
        start = time.monotonic()
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://{host}:{env['PORT']}/mcp"
        result = check(url, timeout=TIMEOUT, wait_until_up=True, poll_interval=0.02)
        elapsed = time.monotonic() - start
        exited = process.poll()
        if exited is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        log.seek(0)
        output = log.read().decode(errors="replace")
    reason = None
    if not result.ok:
        reason = _reason(output, result.error, exited)
    return {
        "ok": result.ok,
        "seconds": round(elapsed, 3) if result.ok else None,
        "tools": len(result.tools),
        "reason": reason,
        "load1": round(os.getloadavg()[0], 2),  # the machine is shared: say how busy it was
    }


def normalize(reason: str) -> str:
    """Same failure, same text: drop the per-run temporary directories from paths."""
    return re.sub(r"/tmp/cold-[a-z]+-[^/]+/", "<fresh>/", reason)


def _reason(output: str, error: str | None, exited: int | None) -> str:
    """The line of the server's output that explains a failure best."""
    for needle in ("ImportError", "ModuleNotFoundError", "No module named", "Error:", "error"):
        for line in reversed(output.splitlines()):
            if needle in line:
                return f"{line.strip()[:240]} (exit {exited})"
    return f"{error} (exit {exited})"


def baseline_venv(workdir: Path) -> Path:
    """A fresh venv with only mcp-proxy 0.13 + pip, as the original image had (pip installs go here)."""
    venv = workdir / "baseline-venv"
    uv = str(VENV_BIN / "uv")
    subprocess.run([uv, "venv", "--quiet", "--seed", "--python", sys.executable, str(venv)], check=True)
    subprocess.run(
        [uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), "mcp-proxy==0.13.0", "mcp<2"],
        check=True,
    )
    return venv


def run_original(server: dict, workdir: Path) -> dict:
    venv = baseline_venv(workdir)
    env = clean_env(
        MCP_RUNTIME=server["runtime"],
        MCP_PACKAGE=server["package"],
        npm_config_cache=str(workdir / "npm-cache"),
    )
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}"
    env["VIRTUAL_ENV"] = str(venv)
    return measure([str(BASELINE)], env, "[::1]")


def run_ours(server: dict, home: Path, action: str, workdir: Path) -> dict:
    env = clean_env(
        MCP_RUNTIME=server["runtime"],
        MCP_PACKAGE=server["package"],
        MCP_RESOLVED_AT=server["resolved_at"],
        MCP_HOME=str(home),
        UV_CACHE_DIR=str(workdir / "uv-cache"),
        npm_config_cache=str(workdir / "npm-cache"),
    )
    return measure([str(ENTRYPOINT), action], env, "127.0.0.1")


def versions() -> dict:
    def out(*cmd: str) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
        except OSError:
            return "?"

    from importlib.metadata import version

    return {
        "python": platform.python_version(),
        "node": out("node", "--version"),
        "npm": out("npm", "--version"),
        "uv": out(str(VENV_BIN / "uv"), "--version"),
        "mcp-proxy": version("mcp-proxy"),
        "mcp": version("mcp"),
        "cpus": os.cpu_count(),
        "load_avg_at_start": os.getloadavg()[0],
    }


def summarize(runs: list[dict]) -> dict:
    times = [r["seconds"] for r in runs if r["ok"]]
    return {
        "runs": len(runs),
        "ok": len(times),
        "median_s": round(statistics.median(times), 3) if times else None,
        "min_s": round(min(times), 3) if times else None,
        "max_s": round(max(times), 3) if times else None,
        "failures": sorted({normalize(r["reason"]) for r in runs if not r["ok"]}),
        "mean_load1": round(statistics.mean(loads), 2)
        if (loads := [r["load1"] for r in runs if "load1" in r])
        else None,
    }


def finish(server: dict, modes: dict[str, list[dict]]) -> dict:
    summary = {mode: summarize(runs) for mode, runs in modes.items()}
    baked = summary["baked"]["median_s"]
    ratios = {
        f"{mode}/baked": round(summary[mode]["median_s"] / baked, 1)
        for mode in ("original", "install-at-start")
        if baked and summary[mode]["median_s"]
    }
    return {**server, "summary": summary, "ratios": ratios, "runs": modes}


def write(report: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cold_start.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "cold_start.md").write_text(markdown(report))
    print((RESULTS / "cold_start.md").read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per slow mode (original, install-at-start)")
    parser.add_argument("--baked-repeats", type=int, default=7)
    parser.add_argument("--render", action="store_true", help="only rebuild the summaries and Markdown from the JSON")
    opts = parser.parse_args()
    if opts.render:
        report = json.loads((RESULTS / "cold_start.json").read_text())
        report["servers"] = [
            finish({k: v for k, v in row.items() if k not in ("summary", "ratios", "runs")}, row["runs"])
            for row in report["servers"]
        ]
        write(report)
        return 0

    report: dict = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "versions": versions()}
    rows = []
    for server in SERVERS:
        name = server["package"]
        print(f"== {name}", flush=True)
        modes: dict[str, list[dict]] = {"original": [], "install-at-start": [], "baked": []}
        for i in range(opts.repeats):
            with tempfile.TemporaryDirectory(prefix="cold-original-") as work:
                modes["original"].append(run_original(server, Path(work)))
            print(f"  original #{i + 1}: {modes['original'][-1]}", flush=True)
            with tempfile.TemporaryDirectory(prefix="cold-install-") as work:
                modes["install-at-start"].append(run_ours(server, Path(work) / "home", "run", Path(work)))
            print(f"  install-at-start #{i + 1}: {modes['install-at-start'][-1]}", flush=True)
        with tempfile.TemporaryDirectory(prefix="cold-baked-") as work:
            home = Path(work) / "home"
            env = clean_env(
                MCP_RUNTIME=server["runtime"],
                MCP_PACKAGE=server["package"],
                MCP_RESOLVED_AT=server["resolved_at"],
                MCP_HOME=str(home),
            )
            subprocess.run([str(ENTRYPOINT), "install"], env=env, check=True, capture_output=True, timeout=600)
            for i in range(opts.baked_repeats):
                modes["baked"].append(run_ours(server, home, "serve", Path(work)))
                print(f"  baked #{i + 1}: {modes['baked'][-1]}", flush=True)
            shutil.rmtree(home, ignore_errors=True)
        rows.append(finish(server, modes))

    report["servers"] = rows
    report["load_avg_at_end"] = os.getloadavg()[0]
    write(report)
    return 0


def markdown(report: dict) -> str:
    v = report["versions"]
    end_load = report.get("load_avg_at_end")
    load = f"1-min load {v['load_avg_at_start']:.2f} at start" + (f", {end_load:.2f} at end" if end_load else "")
    lines = [
        "# Cold start: process start → first MCP tools/list answer",
        "",
        f"Run {report['date']} on this machine ({v['cpus']} CPUs, shared with other engineers' test runs; {load}).",
        f"Python {v['python']}, Node {v['node']}, npm {v['npm']}, {v['uv']}, mcp-proxy {v['mcp-proxy']}, "
        f"mcp {v['mcp']} (gateway side). Produced by `bench/cold_start.py`; every run is in `cold_start.json`.",
        "",
        "- **original**: the original design's entrypoint (`bench/baseline_entrypoint.sh`), fresh venv with "
        "mcp-proxy only and an empty npm cache, as in a new container.",
        "- **install-at-start**: `deploy/entrypoint.sh` default action, empty MCP_HOME and empty uv/npm caches.",
        "- **baked**: `deploy/entrypoint.sh serve`, server installed beforehand (the image's path).",
        "",
        "| server | original (median s) | install-at-start (median s) | baked (median s) "
        "| original / baked | install / baked |",
        "|---|---|---|---|---|---|",
    ]

    def cell(summary: dict) -> str:
        if summary["median_s"] is None:
            return f"fails ({summary['ok']}/{summary['runs']})"
        extra = "" if summary["ok"] == summary["runs"] else f" ({summary['ok']}/{summary['runs']} ok)"
        return f"{summary['median_s']:.2f}{extra}"

    for row in report["servers"]:
        s = row["summary"]
        r = row["ratios"]
        lines.append(
            f"| {row['package']} | {cell(s['original'])} | {cell(s['install-at-start'])} | {cell(s['baked'])} "
            f"| {r.get('original/baked', '—')}× | {r.get('install-at-start/baked', '—')}× |"
        )
    lines += [
        "",
        "## Spread",
        "",
        "| server | mode | ok / runs | min s | median s | max s | mean 1-min load |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in report["servers"]:
        for mode, m in row["summary"].items():

            def num(x: float | None) -> str:
                return "—" if x is None else f"{x:.2f}"

            lines.append(
                f"| {row['package']} | {mode} | {m['ok']} / {m['runs']} | {num(m['min_s'])} | {num(m['median_s'])} "
                f"| {num(m['max_s'])} | {num(m.get('mean_load1'))} |"
            )
    lines += ["", "## Failures", ""]
    any_failure = False
    for row in report["servers"]:
        for mode, summary in row["summary"].items():
            for reason in summary["failures"]:
                any_failure = True
                lines.append(f"- {row['package']} / {mode}: `{reason}`")
    if not any_failure:
        lines.append("- none")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
