"""Cold start: time from process start to the first MCP tools/list answer, three ways, one run.

* ``original``: the original design's entrypoint (bench/baseline_entrypoint.sh) in a fresh container-like
  state: a new venv holding only mcp-proxy 0.13, installed as that design's image did (``pip install`` into
  the image's Python 3.12, bytecode compiled), and an empty npm cache, as on a freshly started machine.
* ``install-at-start``: deploy/entrypoint.sh's default action with an empty MCP_HOME and empty uv/npm
  caches: it installs (dependencies as of the release), then serves.
* ``baked``: deploy/entrypoint.sh ``serve`` with the server installed beforehand (what the image does).

catwalk's two modes run the gateway from a venv built as deploy/Dockerfile builds /opt/gateway (Python 3.12,
``--compile-bytecode``, only h11), and Python servers get Python 3.12, the image's. Every mode runs servers on
the image's Node (``bench/image_runtime.py``).
Every mode is timed by the same client (``components.mcpcheck``, same poll interval), and every venv or
install a mode needs before its start is made before the clock starts.

Run by hand: ``.venv/bin/python -m bench.cold_start [--repeats N]``. Writes bench/results/cold_start.{md,json}.
``--compare-gateway REV`` times only baked starts, deploy/ at REV against the work tree's, alternately.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

# Client modules are imported before the clock starts: the import is not part of a cold start.
import anyio
import mcp.client.sse
import mcp.client.streamable_http  # noqa: F401

from bench.image_runtime import gateway_specs, image_node_bin, image_python
from bench.served import first_answer, stop

ROOT = Path(__file__).resolve().parents[1]
ENTRYPOINT = ROOT / "deploy" / "entrypoint.sh"
BASELINE = ROOT / "bench" / "baseline_entrypoint.sh"
RESULTS = ROOT / "bench" / "results"
VENV_BIN = Path(sys.executable).parent
TIMEOUT = 180.0
POLL_S = 0.02  # retry interval while the port refuses connections, the same for every mode

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
    env["PATH"] = os.pathsep.join((str(VENV_BIN), str(image_node_bin()), env["PATH"]))
    env["PORT"] = str(free_port())
    env.update(extra)
    return env


def measure(command: list[str], env: dict[str, str], host: str) -> dict:
    """Start ``command``; poll initialize + tools/list until the first answer, the process's exit or TIMEOUT."""
    with tempfile.TemporaryFile() as log:
        start = time.monotonic()
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://{host}:{env['PORT']}/mcp"
        result = anyio.run(partial(first_answer, process, url, timeout=TIMEOUT, poll_interval=POLL_S))
        elapsed = time.monotonic() - start
        exited = process.poll()
        stop(process)
        log.seek(0)
        output = log.read().decode(errors="replace")
    ok = result is not None and result.ok
    run = {
        "ok": ok,
        "seconds": round(elapsed, 3) if ok else None,
        "tools": len(result.tools) if result else 0,
        "reason": None if ok else _reason(output, result.error if result else "exited before answering", exited),
        "load1": round(os.getloadavg()[0], 2),  # the machine is shared: say how busy it was
    }
    if evidence := [line.strip()[:300] for line in output.splitlines() if EVIDENCE.search(line)]:
        run["installer"] = evidence  # what an install at start did (pip's conflict warning, versions installed)
    return run


EVIDENCE = re.compile(r"^(Successfully installed |.*requires mcp.*incompatible)")


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


PYTHON = image_python()
# The original design's image: `pip install mcp-proxy` (0.13, the last release; mcp < 2 as it needs).
BASELINE_SPECS = ["mcp-proxy==0.13.0", "mcp>=1.9,<2"]


def make_venv(venv: Path, specs: list[str], *, seed_pip: bool = False) -> Path:
    """A venv holding only ``specs``, bytecode compiled as ``pip install`` and the image do; its Python."""
    uv = str(VENV_BIN / "uv")
    subprocess.run(
        [uv, "venv", "--quiet", *(["--seed"] if seed_pip else []), "--python", PYTHON, str(venv)], check=True
    )
    python = venv / "bin" / "python"
    subprocess.run([uv, "pip", "install", "--quiet", "--compile-bytecode", "--python", str(python), *specs], check=True)
    return python


def gateway_venv(venv: Path, deploy: Path = ENTRYPOINT.parent, specs: list[str] | None = None) -> Path:
    """catwalk's gateway venv as deploy/Dockerfile builds /opt/gateway (built before any clock starts): h11, and
    ``deploy``'s catwalk_runtime importable through a .pth file, its bytecode compiled as the image's /app."""
    python = make_venv(venv, specs or gateway_specs())
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(purelib, "catwalk_runtime.pth").write_text(str(deploy))
    subprocess.run([str(python), "-m", "compileall", "-q", str(deploy)], check=True)
    return python


def run_original(server: dict, workdir: Path) -> dict:
    """A new container of the original design: its own fresh venv (pip installs go there), empty npm cache."""
    venv = make_venv(workdir / "baseline-venv", BASELINE_SPECS, seed_pip=True).parent.parent
    env = clean_env(
        MCP_RUNTIME=server["runtime"],
        MCP_PACKAGE=server["package"],
        npm_config_cache=str(workdir / "npm-cache"),
    )
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}"
    env["VIRTUAL_ENV"] = str(venv)
    result = measure([str(BASELINE)], env, "[::1]")
    if server["runtime"] == "python":  # what its `pip install` did to mcp-proxy's own environment
        result["mcp_after_start"] = installed_version(venv, "mcp")
    return result


def installed_version(venv: Path, dist: str) -> str | None:
    probe = subprocess.run(
        [str(venv / "bin" / "python"), "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"],
        capture_output=True,
        text=True,
    )
    return probe.stdout.strip() or None


def server_env(server: dict, home: Path, gateway_python: Path, **extra: str) -> dict[str, str]:
    """The entrypoint's environment for one of catwalk's modes (install-at-start, baked)."""
    return clean_env(
        MCP_RUNTIME=server["runtime"],
        MCP_PACKAGE=server["package"],
        MCP_RESOLVED_AT=server["resolved_at"],
        MCP_HOME=str(home),
        MCP_GATEWAY_PYTHON=str(gateway_python),
        MCP_PYTHON=PYTHON,
        **extra,
    )


def run_ours(
    server: dict, home: Path, action: str, workdir: Path, gateway_python: Path, entrypoint: Path = ENTRYPOINT
) -> dict:
    env = server_env(
        server,
        home,
        gateway_python,
        UV_CACHE_DIR=str(workdir / "uv-cache"),
        npm_config_cache=str(workdir / "npm-cache"),
    )
    return measure([str(entrypoint), action], env, "127.0.0.1")


def install_baked(server: dict, home: Path, gateway_python: Path) -> Path:
    """Install a server as an image build bakes it (``entrypoint.sh install``) into ``home``; returns it."""
    env = server_env(server, home, gateway_python)
    subprocess.run([str(ENTRYPOINT), "install"], env=env, check=True, capture_output=True, timeout=600)
    return home


def compare_gateways(revision: str, repeats: int) -> int:
    """Baked starts with deploy/ (entrypoint and runtime) as of ``revision`` and as in the work tree, alternately
    (same load for both), everything else equal. Writes results/cold_start_gateway.{md,json}."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="cold-compare-") as work:
        before_dir = Path(work) / "before"  # the revision's deploy/, whole
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "deploy"], capture_output=True)
        if archive.returncode != 0:
            raise SystemExit(f"--compare-gateway: no deploy/ at {revision!r}: {archive.stderr.decode().strip()}")
        before_dir.mkdir()
        subprocess.run(["tar", "-x", "-C", str(before_dir)], input=archive.stdout, check=True)
        before = before_dir / "deploy" / "entrypoint.sh"
        # A venv each (the runtime package is found through a .pth), plus mcp-proxy for revisions that embedded it.
        before_python = gateway_venv(Path(work) / "gateway-before", before.parent, [*gateway_specs(), *BASELINE_SPECS])
        gateway_python = gateway_venv(Path(work) / "gateway")
        report: dict = {
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "versions": versions(gateway_python),
            "before": revision,
        }
        for spec in SERVERS:
            home = install_baked(spec, Path(work) / "home", gateway_python)
            runs: dict[str, list[dict]] = {"before": [], "after": []}
            for _ in range(repeats):
                runs["before"].append(run_ours(spec, home, "serve", Path(work), before_python, before))
                runs["after"].append(run_ours(spec, home, "serve", Path(work), gateway_python))
            rows.append({**spec, "summary": {k: summarize(v) for k, v in runs.items()}, "runs": runs})
            print(f"== {spec['package']}: {rows[-1]['summary']}", flush=True)
    report["servers"] = rows
    report["load_avg_at_end"] = os.getloadavg()[0]
    lines = [
        "# Cold start, baked: gateway before vs after",
        "",
        f"Run {report['date']}: `deploy/entrypoint.sh serve` with `deploy/` as of {revision} (before) "
        f"and as in catwalk {report['versions']['commit']} (after), alternately, {repeats} starts each, everything "
        f"else equal (image-like gateway venv, Python {report['versions']['python']}). 1-min load "
        f"{report['versions']['load_avg_at_start']:.2f} at start, {report['load_avg_at_end']:.2f} at end. "
        "Produced by `bench/cold_start.py --compare-gateway`.",
        "",
        "| server | before median s (min–max) | after median s (min–max) | after / before | mean 1-min load |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        b, a = row["summary"]["before"], row["summary"]["after"]
        if b["median_s"] and a["median_s"]:
            lines.append(
                f"| {row['package']} | {b['median_s']:.3f} ({b['min_s']:.3f}–{b['max_s']:.3f}) "
                f"| {a['median_s']:.3f} ({a['min_s']:.3f}–{a['max_s']:.3f}) | {a['median_s'] / b['median_s']:.2f} "
                f"| {b['mean_load1']:.2f} |"
            )
        else:
            lines.append(f"| {row['package']} | {b['ok']}/{b['runs']} ok | {a['ok']}/{a['runs']} ok | — | — |")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cold_start_gateway.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "cold_start_gateway.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def versions(gateway_python: Path) -> dict:
    def out(*cmd: str) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
        except OSError:
            return "?"

    venv = gateway_python.parent.parent
    installed = {dist: installed_version(venv, dist) for dist in ("h11", "mcp-proxy", "mcp")}
    dirty = out("git", "-C", str(ROOT), "status", "--porcelain", "--", "deploy", "bench/cold_start.py")
    return {
        "python": out(PYTHON, "-c", "import platform; print(platform.python_version())"),
        "node": out(str(image_node_bin() / "node"), "--version"),
        "npm": out("npm", "--version"),
        "uv": out(str(VENV_BIN / "uv"), "--version"),
        "gateway": ", ".join(f"{dist} {found}" for dist, found in installed.items() if found),
        "baseline": " + ".join(BASELINE_SPECS),
        "commit": out("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD")
        + (" + uncommitted changes" if dirty else ""),
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
    parser.add_argument("--repeats", type=int, default=5, help="runs per slow mode (original, install-at-start)")
    parser.add_argument("--baked-repeats", type=int, default=7)
    parser.add_argument("--render", action="store_true", help="only rebuild the summaries and Markdown from the JSON")
    parser.add_argument(
        "--compare-gateway", metavar="REV", help="only baked starts: the gateway in deploy/ at REV vs the work tree's"
    )
    opts = parser.parse_args()
    if opts.compare_gateway:
        return compare_gateways(opts.compare_gateway, opts.baked_repeats)
    if opts.render:
        report = json.loads((RESULTS / "cold_start.json").read_text())
        report["servers"] = [
            finish({k: v for k, v in row.items() if k not in ("summary", "ratios", "runs")}, row["runs"])
            for row in report["servers"]
        ]
        write(report)
        return 0

    rows = []
    with tempfile.TemporaryDirectory(prefix="cold-gateway-") as built:
        # catwalk's gateway venv, built once as the image builds /opt/gateway (not part of any start).
        gateway_python = gateway_venv(Path(built) / "gateway")
        date = datetime.now(timezone.utc).isoformat(timespec="seconds")
        report: dict = {"date": date, "versions": versions(gateway_python)}
        for spec in SERVERS:
            server = dict(spec)  # run_server notes what the install put in the server's venv
            print(f"== {server['package']}", flush=True)
            modes = run_server(server, opts.repeats, opts.baked_repeats, gateway_python)
            rows.append(finish(server, modes))
    report["servers"] = rows
    report["load_avg_at_end"] = os.getloadavg()[0]
    write(report)
    return 0


def run_server(server: dict, repeats: int, baked_repeats: int, gateway_python: Path) -> dict[str, list[dict]]:
    """Every mode for one server: the slow ones alternate (same load for both), then the baked starts."""
    modes: dict[str, list[dict]] = {"original": [], "install-at-start": [], "baked": []}
    for i in range(repeats):
        with tempfile.TemporaryDirectory(prefix="cold-original-") as work:
            modes["original"].append(run_original(server, Path(work)))
        print(f"  original #{i + 1}: {modes['original'][-1]}", flush=True)
        with tempfile.TemporaryDirectory(prefix="cold-install-") as work:
            modes["install-at-start"].append(run_ours(server, Path(work) / "home", "run", Path(work), gateway_python))
        print(f"  install-at-start #{i + 1}: {modes['install-at-start'][-1]}", flush=True)
    with tempfile.TemporaryDirectory(prefix="cold-baked-") as work:
        home = install_baked(server, Path(work) / "home", gateway_python)
        if server["runtime"] == "python":  # the server's own venv (the gateway's holds no mcp)
            server["mcp_in_server_env"] = installed_version(home / "python" / server["package"], "mcp")
        for i in range(baked_repeats):
            modes["baked"].append(run_ours(server, home, "serve", Path(work), gateway_python))
            print(f"  baked #{i + 1}: {modes['baked'][-1]}", flush=True)
    return modes


GOAL = 20.0  # the target: baked starts at least this many times faster than the original npm path

WHY_PYTHON_FAILS = """\
## Why the original Python path fails (checked by hand, 2026-11-25)

1. Both servers declare `Requires-Dist: mcp<3,>=2.3` (their 2026.10.19 wheels' METADATA).
2. The original entrypoint runs `pip install --no-cache-dir "$MCP_PACKAGE"` into the environment mcp-proxy
   itself runs from. pip resolves the server's requirements against the newest releases and *replaces*
   mcp-proxy's `mcp` 1.30.0 with `mcp` 2.3.0 (`Uninstalling mcp-1.30.0`). It notices the conflict,
   prints `ERROR: … mcp-proxy 0.13.0 requires mcp<2,>=1.27.1, but you have mcp 2.3.0 which is
   incompatible.` and still exits 0, so the start goes on (the `|| true` is not even needed to hide it).
3. `exec mcp-proxy …` then dies at import, before it listens: mcp-proxy 0.13.0's `proxy_server.py`
   line 11 is `from mcp.server.lowlevel.server import request_ctx`, and mcp 2.x's low-level `Server` no
   longer has that module-level `ContextVar`: its handlers receive the request context as an argument
   (`on_list_tools(ctx: ServerRequestContext, params)`). Exit code 1, at every start: the install is
   repeated each time, so a restart fails the same way.
4. A second defect is hidden behind the first: the server would be launched as
   `python -m mcp-server-time==2026.10.19`, which Python rejects (`No module named
   'mcp-server-time==2026'`); even without the version it is not a module name (the module is
   `mcp_server_time`, the command is the console script `mcp-server-time`).

catwalk avoids both defects: the gateway runs from its own venv (`/opt/gateway`, only h11; no `mcp` at all)
that no server install touches; each server is installed by `uv` into its own venv under `MCP_HOME`, resolved as
of its release (`--exclude-newer` = upload time + 1 h), so it gets the `mcp` it was released against
(2.3.0 here; `mcp` 1.x for servers released before mcp 2, which a plain install would break); and it is
started by its console script, found in its own `entry_points.txt`, never `python -m <spec>`.
"""


def markdown(report: dict) -> str:
    v = report["versions"]
    end_load = report.get("load_avg_at_end")
    load = f"1-min load {v['load_avg_at_start']:.2f} at start" + (f", {end_load:.2f} at end" if end_load else "")
    lines = [
        "# Cold start: process start → first MCP tools/list answer",
        "",
        f"Run {report['date']} on the benchmark machine ({v['cpus']} CPUs, shared with other test runs; {load}).",
        f"Python {v['python']} (servers, gateway and baseline), Node {v['node']}, npm {v['npm']}, {v['uv']}, "
        f"gateway venv: {v.get('gateway', '?')}; baseline venv: {v.get('baseline', '?')}; "
        f"catwalk {v.get('commit', '?')}. "
        "Produced by `bench/cold_start.py`; every run is in `cold_start.json`.",
        "",
        "Every mode is timed the same way: from `Popen` of the entrypoint to the end of the first tools/list "
        "answer, by the same client (`components.mcpcheck`: initialize + tools/list over streamable HTTP, "
        "retrying a refused connection every 20 ms). Venvs a mode needs are built before its clock starts.",
        "",
        "- **original**: the original design's entrypoint (`bench/baseline_entrypoint.sh`) as in a new container "
        "of its image: a fresh venv holding only mcp-proxy 0.13 (`pip install` into Python 3.12, bytecode "
        "compiled, as that image's `pip install mcp-proxy` did) and an empty npm cache. npm servers start with "
        "`npx -y <spec>`; Python servers with `pip install <spec>` then `python -m <spec>`.",
        "- **install-at-start**: `deploy/entrypoint.sh` default action, empty MCP_HOME and empty uv/npm caches.",
        "- **baked**: `deploy/entrypoint.sh serve`, server installed beforehand (the image's path).",
        "",
        "| server | original median s (min–max, ok/runs) | install-at-start median s | baked median s (min–max) "
        "| original / baked | install / baked |",
        "|---|---|---|---|---|---|",
    ]

    def cell(summary: dict, spread: bool = False) -> str:
        if summary["median_s"] is None:
            return f"fails ({summary['ok']}/{summary['runs']})"
        text = f"{summary['median_s']:.2f}"
        if spread:
            text += f" ({summary['min_s']:.2f}–{summary['max_s']:.2f}, {summary['ok']}/{summary['runs']})"
        elif summary["ok"] != summary["runs"]:
            text += f" ({summary['ok']}/{summary['runs']} ok)"
        return text

    for row in report["servers"]:
        s = row["summary"]
        r = row["ratios"]
        lines.append(
            f"| {row['package']} | {cell(s['original'], spread=True)} | {cell(s['install-at-start'])} "
            f"| {cell(s['baked'], spread=True)} "
            f"| {r.get('original/baked', '—')}× | {r.get('install-at-start/baked', '—')}× |"
        )
    lines.append("")
    for row in report["servers"]:
        ratio = row["ratios"].get("original/baked")
        if row["runtime"] == "npm" and ratio is not None:
            verdict = "met" if ratio >= GOAL else "**not met**"
            lines.append(
                f"Target, baked ≥ {GOAL:g}× faster than the original npm path: {row['package']} "
                f"{row['summary']['original']['median_s']:.2f} s / {row['summary']['baked']['median_s']:.2f} s "
                f"= {ratio}×, {verdict}."
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
    evidence = []
    for row in report["servers"]:
        original = row["runs"]["original"]
        after = sorted({run["mcp_after_start"] for run in original if run.get("mcp_after_start")})
        said = sorted({line for run in original for line in run.get("installer", []) if "incompatible" in line})
        if after or said:
            evidence.append(
                f"- {row['package']}: after the original start, mcp-proxy's venv holds mcp {', '.join(after) or '?'}"
                + (f"; pip said `{said[0]}`" if said else "")
                + (
                    f"; catwalk's venv for the server holds mcp {row['mcp_in_server_env']}"
                    if row.get("mcp_in_server_env")
                    else ""
                )
            )
    if evidence:
        lines += ["", "Recorded in this run:", "", *evidence]
    if evidence or any(
        row["runtime"] == "python" and row["summary"]["original"]["median_s"] is None for row in report["servers"]
    ):
        lines += ["", WHY_PYTHON_FAILS.rstrip()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
