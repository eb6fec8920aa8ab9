"""Success rate: do real no-credential MCP servers deploy? detect → install → serve → initialize + tools/list.

For each server of ``bench/servers_success.py`` (versions pinned): ``components.detect`` resolves the spec,
``deploy/entrypoint.sh install`` installs it into a bench MCP_HOME (uv/npm caches kept between runs, so a
re-run measures a warm-cache install), ``deploy/entrypoint.sh serve`` serves it through the auth gateway on a
free loopback port, and ``components.mcpcheck`` does initialize + tools/list with the bearer token. At most
two servers at a time (the machine has 2 cores). Python servers' venvs use Python 3.12, the image's.

Run by hand (it installs from PyPI and npm)::

    .venv/bin/python -m bench.success_rate                     # the whole list
    .venv/bin/python -m bench.success_rate --only mcp-scholarly,@mui/mcp --runtime python
    .venv/bin/python -m bench.success_rate --compare-plain      # + plain resolution for pre-mcp-2 servers

``--compare-plain`` installs each Python server released before ``mcp`` 2.0.0 a second time with
MCP_EXCLUDE_NEWER=none (newest dependencies, as plain ``uvx`` resolves today) in a separate MCP_HOME, to
show what the as-of-release cutoff changes. Results go to ``bench/results/success_rate.{md,json}`` (a
subset run to ``success_rate-subset.*`` unless ``--output`` says otherwise); the JSON is rewritten after
every server, so an interrupted run leaves its partial results.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from functools import partial
from importlib.metadata import version as dist_version
from pathlib import Path

import anyio

from bench.image_runtime import image_node_bin, image_python
from bench.served import first_answer, stop
from bench.servers_success import Case, cases
from catwalk_runtime import contract
from components.detect import Clients, DetectError, DiskCache, detect

ROOT = Path(__file__).resolve().parents[1]
ENTRYPOINT = ROOT / "deploy" / "entrypoint.sh"
RESULTS = ROOT / "bench" / "results"
VENV_BIN = Path(sys.executable).parent
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "catwalk-bench"
MCP_2 = ("mcp", "2.0.0")  # servers released before this are the "pre-2.x" ones
GOAL = 0.95

# Failures looked into by hand (the classification above only names the category): what happened and what
# catwalk could do. Keyed by server spec; printed under "Failures" when that server fails.
EXPLANATIONS: dict[str, str] = {
    "markitdown-mcp": (
        "Looked into: the release (2026-10-21 20:41 UTC) needs markitdown>=0.1.9, which needs certifi>=2026.10.19, "
        "and the only such certifi (2026.10.19.post1) was uploaded 2026-10-22 00:02, after the cutoff (release + 1 h): "
        "as of its release it was uninstallable. `entrypoint.sh install` now retries an unresolvable as-of-release "
        "install as of release + 1 day, 7 days, 30 days, then without a cutoff (the table says which it used); a "
        "failure here means none of those resolved either: see the installer output in the JSON."
    ),
    "npm:mcp-server-sqlite": (
        "Looked into: its dependency better-sqlite3 runs `prebuild-install` (a prebuilt binary from github.com) and "
        "else `node-gyp rebuild`, which downloads Node's headers from nodejs.org unless npm_config_nodedir names "
        "them. `entrypoint.sh install` now sets npm_config_nodedir to Node's own headers and baked images install in "
        "a build stage with a compiler, so it builds with no download; a failure here means the build itself "
        "failed: see the installer output in the JSON."
    ),
    "mcp-mermaid": (
        "Looked into: its postinstall runs `playwright install --with-deps chromium` (apt-get as root, then Chrome for "
        "Testing from cdn.playwright.dev, which the bench host cannot reach; catwalk's image installs as uid 10001 "
        "without sudo, so it failed on a Fly builder too). Detection now marks it as driving a browser: the install "
        "skips its own browser install, runs its dependencies' scripts, and links Playwright's expected Chromium to "
        "MCP_BROWSER (Debian's, in its baked image). A failure here means that step failed: see the installer output "
        "in the JSON."
    ),
    "agentdb": (
        "Looked into: at install, its dependency sharp 0.32 (the release the as-of-release resolution picks) runs its "
        "install script, which downloads libvips from https://github.com/lovell/sharp-libvips/releases "
        "(`getaddrinfo ENOTFOUND github.com` here). A Fly builder reaches GitHub and bakes it. What catwalk could do: "
        "nothing needed on Fly; sharp >= 0.33 ships libvips as npm packages (@img/sharp-libvips-*), so a newer "
        "agentdb would install from the registry alone."
    ),
    "fetcher-mcp": (
        "Looked into: its postinstall runs `playwright install chromium`, a download from cdn.playwright.dev. "
        "Detection now marks it as driving a browser, so, like mcp-mermaid, it installs without that download and "
        "uses MCP_BROWSER (Debian's Chromium in its baked image); a failure here means that step failed."
    ),
    "@sveltejs/mcp": (
        "Looked into: the install is fine; at start, registering its documentation resources, it fetches "
        "https://svelte.dev/docs/experimental/sections.json and exits on `fetch failed` (`getaddrinfo ENOTFOUND "
        "svelte.dev`). A Fly machine reaches svelte.dev. What catwalk could do: nothing needed on Fly; upstream "
        "could fetch the sections on first use."
    ),
    "@bytebase/dbhub": (
        "Looked into: its package says engines.node >= 22.5.0 and its SQLite connector imports `node:sqlite`, "
        "which Node 20 lacks (`No such built-in module: node:sqlite`). The image runs Node 24 now; on an older Node "
        "entrypoint.sh installs the newest Node of the lowest supported LTS major that fits in its environment. A "
        "failure here means that step failed: see the installer output in the JSON."
    ),
    "@kubb/mcp": (
        "Looked into: its package says engines.node >= 22 and @kubb/core imports `glob` from `node:fs/promises`, "
        "added in Node 22 (on Node 20: `does not provide an export named 'glob'`). The image runs Node 24 now; a "
        "failure here means the Node it runs on, or the one installed for it, is older."
    ),
    "@chakra-ui/react-mcp": (
        "Looked into: the install is fine; at start, before answering, it fetches its component list from "
        "https://chakra-ui.com/api/types (`initializeTools` → `get_component_example`) and exits on `fetch failed`; "
        "the bench host reaches only the registries, a Fly machine reaches the site. What catwalk could do: nothing "
        "needed on Fly (the gateway reports the start failure with the server's own message); upstream could defer "
        "the fetch to the first tool call, so a start needs no network."
    ),
}

# --------------------------------------------------------------------------------- failure classification
# (category, pattern over the install/serve output, what catwalk could do about it). First match wins.
CATEGORIES: list[tuple[str, re.Pattern, str]] = [
    (
        "needs Python >= 3.13",
        re.compile(r"requires Python >=\s*3\.1[3-9]|requires-python.*3\.1[3-9]", re.I),
        "detection already refuses it with the newest release that runs; an image variant on Python 3.13 would run it",
    ),
    (
        "needs Node >= 22",
        re.compile(
            r"No such built-in module: node:\w+|ERR_UNKNOWN_BUILTIN_MODULE|"
            r"The requested module 'node:[\w/]+' does not provide an export named"
        ),
        "the server ran on a Node older than it needs: entrypoint.sh reads engines.node and installs a Node that fits; "
        "a package that does not declare it could be given one with a stack setting",
    ),
    (
        "not on the registry",
        re.compile(r"was not found on the|404 Not Found|does not exist on", re.I),
        "nothing: the spec is wrong or the package was removed (detection says so before deploy)",
    ),
    (
        "no dependency resolution",
        re.compile(r"No solution found|ETARGET|ERESOLVE|No matching version", re.I),
        "try the resolution without the as-of-release cutoff (MCP_EXCLUDE_NEWER=none) and report which works",
    ),
    (
        "a download outside the registries",
        re.compile(
            r"getaddrinfo ENOTFOUND \S+|Could not resolve host: \S+|nodejs\.org/download\S*|"
            r"Failed to resolve '(?!pypi|registry)[\w.-]+'|\bfetch failed\b"
        ),
        "nothing on Fly, which reaches the internet; the benchmark machine reaches only PyPI and npm. The image build "
        "could fetch such files once (baked) instead of at every start",
    ),
    (
        "needs a system library",
        re.compile(
            r"error while loading shared libraries|cannot open shared object file|lib\S+\.so\S*: cannot|"
            r"Library not loaded|libGL|libcairo|OSError: .*\.so",
            re.I,
        ),
        "add the library to the image (apt) or offer an image with common native libraries",
    ),
    (
        "needs a system program",
        re.compile(
            r"executable .* not found|command not found|No such file or directory: '(?!/)[\w.-]+'|"
            r"which\(\S+\) returned None|Chrome.*not found|browser.*not (found|installed)|spawn \S+ ENOENT",
            re.I,
        ),
        "install the program in the image, or let the stack config name apt packages to add",
    ),
    (
        "native build failed",
        re.compile(r"Failed to build|error: command '(gcc|cc|g\+\+)'|node-gyp|gyp ERR", re.I),
        "prefer wheels (uv --only-binary) or add build tools to the image's install stage",
    ),
    (
        "needs credentials",
        re.compile(
            r"(api[_ -]?key|token|secret|password|credentials?)\b[^\n]{0,80}"
            r"\b(required|not set|missing|must be (set|provided)|is not configured)|"
            r"(missing|no)\b[^\n]{0,40}(api[_ -]?key|token|credentials)",
            re.I,
        ),
        "the server is not credential-free after all: the stack config's secrets carry its keys",
    ),
    (
        "needs configuration",
        re.compile(
            r"environment variable\b[^\n]{0,80}\b(required|not set|missing)|\b[Uu]sage:|"
            r"the following arguments are required|Missing required argument|Missing command|"
            r"Cannot find config file|Did you forget to"
        ),
        "the stack config's args/env give it what it needs; detection could read the server's README",
    ),
    (
        "incompatible with mcp 2.x",
        re.compile(
            r"cannot import name \S+ from '?mcp\b|No module named '?mcp[.']|module '?mcp[.\w]*'? has no attribute|"
            r"AttributeError: '(Server|FastMCP|MCPServer)' object has no attribute"
        ),
        "install as of the release (MCP_RESOLVED_AT), which catwalk does by default",
    ),
    (
        "a newer dependency broke it",
        re.compile(
            r"^(ImportError|ModuleNotFoundError): .*|^AttributeError: module .*"
            r"|^TypeError: .*unexpected keyword argument",
            re.M,
        ),
        "install as of the release (MCP_RESOLVED_AT), which catwalk does by default; else pin the dependency",
    ),
    (
        "install failed",
        re.compile(r"install of \S+ failed", re.I),
        "read the installer output in the JSON; usually an upstream packaging bug",
    ),
]


def classify(phase: str, output: str, error: str | None = None) -> dict:
    """Name the failure: its category, the line of output that shows it, and what catwalk could do.

    ``phase`` is where it failed (detect, install, serve, answer); ``output`` the text of that phase
    (installer or server log, or the detection error); ``error`` the MCP client's error, if any.
    """
    text = output or ""
    for category, pattern, remedy in CATEGORIES:
        match = pattern.search(text)
        if match:
            detail = _line_of(text, match.start())
            if category == "needs configuration":  # the usage line says less than the error after it
                detail = _last_lines(text, 1) if _error_lines(text) else detail
            host = re.search(r"getaddrinfo ENOTFOUND \S+", text) if category == OFFLINE else None
            if host and host.group(0) not in detail:  # "fetch failed" alone does not say where it went
                detail = f"{detail} | {_line_of(text, host.start())}"[:300]
            return {"category": category, "detail": detail, "remedy": remedy}
    if phase == "answer" and error and "no answer within" in error:
        return {
            "category": "no answer in time",
            "detail": _last_lines(text) or error,
            "remedy": "a longer start-up timeout, or bake it: most of the time is first-start work",
        }
    if phase == "serve":
        return {
            "category": "exited at start",
            "detail": _last_lines(text) or (error or ""),
            "remedy": "upstream bug or an unmet need; see the detail",
        }
    if phase == "answer":
        return {
            "category": "MCP handshake failed",
            "detail": error or _last_lines(text),
            "remedy": "upstream protocol bug, or a server writing to stdout; see the detail",
        }
    return {"category": f"{phase} failed", "detail": _last_lines(text) or (error or ""), "remedy": ""}


def _line_of(text: str, offset: int) -> str:
    start = text.rfind("\n", 0, offset) + 1
    end = text.find("\n", offset)
    return text[start : end if end >= 0 else len(text)].strip()[:300]


def _error_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if re.match(r"\s*[\w.]*(Error|Exception)\b", line)]


def _last_lines(text: str, count: int = 2) -> str:
    """The last error-looking line (a traceback's last line), else the last lines of the output."""
    errors = _error_lines(text)
    if errors:
        return errors[-1][:300]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(lines[-count:])[:300]


# ---------------------------------------------------------------------------------------- one server


def free_port() -> int:
    with socket.socket(socket.AF_INET) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fill(value: str, work: Path) -> str:
    return value.replace("{work}", str(work))


def server_env(
    spec_env: dict[str, str], case: Case, home: Path, cache: Path, work: Path, plain: bool
) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("MCP_", "npm_config_")) and k != "PORT"}
    env = {
        **keep,
        **spec_env,
        "PATH": os.pathsep.join((str(VENV_BIN), str(image_node_bin()), os.environ["PATH"])),
        "HOME": str(work / "home"),
        "MCP_HOME": str(home),
        "MCP_PYTHON": PYTHON_312,
        "UV_CACHE_DIR": str(cache / "uv"),
        "UV_PYTHON_DOWNLOADS": "never",
        "npm_config_cache": str(cache / "npm"),
    }
    if spec_env.get("MCP_NEEDS_BROWSER"):  # as a baked image of a browser server: Debian's Chromium
        env["MCP_BROWSER"] = system_browser()
    env.update({k: fill(v, work) for k, v in case.env})
    if plain:
        env["MCP_EXCLUDE_NEWER"] = "none"
    return env


PYTHON_312 = ""


@functools.cache
def system_browser() -> str:
    """The local Chromium, which a baked image of a browser server gets from Debian too."""
    found = shutil.which("chromium")
    if found is None:
        raise SystemExit(
            "servers that drive a browser need Chromium here, as their image has it: "
            "apt-get install --no-install-recommends chromium fonts-liberation"
        )
    return found


def run_case(case: Case, clients: Clients, cache: Path, opts, plain: bool = False) -> dict:
    """detect → install → serve → first answer, for one server. Never raises: the row says what happened."""
    row: dict = {
        "server": case.spec,
        "runtime": case.runtime,
        "version": case.version,
        "mode": "plain" if plain else "as-of-release",
        "install_s": None,
        "answer_s": None,
        "tools": None,
        "result": "fail",
        "phase": None,
        "reason": None,
        "note": case.note,
    }
    work = cache / "work" / ("plain" if plain else "pinned") / re.sub(r"[^A-Za-z0-9._-]", "+", case.spec)
    shutil.rmtree(work, ignore_errors=True)
    (work / "home").mkdir(parents=True)
    args = [fill(a, work) for a in case.args]
    pinned = case.version if not re.search(r"==|@\d", case.spec.split(":", 1)[-1]) else None

    start = time.monotonic()
    try:
        spec = detect(case.spec, version=pinned, runtime=case.runtime, args=args, clients=clients)
    except DetectError as exc:
        return _failed(row, "detect", str(exc))
    row["detect_s"] = round(time.monotonic() - start, 2)
    row["version"] = spec.version
    row["package"] = spec.pinned
    row["launch"] = spec.launch
    row["resolved_at"] = spec.env().get("MCP_RESOLVED_AT")
    home = cache / ("home-plain" if plain else "home")
    env = server_env(spec.env(), case, home, cache, work, plain)
    # The server's environment goes once measured (the uv/npm caches stay): a whole run would keep ~25 GB.
    env_dir = server_env_dir(home, case.runtime, env["MCP_PACKAGE"])
    try:
        return _install_and_serve(row, case, env, env_dir, work, opts)
    finally:
        shutil.rmtree(env_dir, ignore_errors=True)


def server_env_dir(home: Path, runtime: str, package: str) -> Path:
    """Where ``entrypoint.sh install`` puts a server (the image's layout: ``catwalk_runtime.contract``)."""
    return Path(contract.env_dir(home, runtime, package))


def _install_and_serve(row: dict, case: Case, env: dict[str, str], env_dir: Path, work: Path, opts) -> dict:
    """``entrypoint.sh install``, then ``serve`` and the first answer; fills ``row``."""
    log = work / "install.log"
    start = time.monotonic()
    with log.open("wb") as out:
        try:
            done = subprocess.run(
                [str(ENTRYPOINT), "install"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=opts.install_timeout,
                check=False,
                start_new_session=True,
                cwd=work,
            )
            code = done.returncode
        except subprocess.TimeoutExpired:
            code = None
    row["install_s"] = round(time.monotonic() - start, 2)
    install_output = log.read_text(errors="replace")
    row["widened_cutoff"] = widened_cutoff(install_output)
    if code == 0:
        row["sdk"] = sdk_version(env_dir, case.runtime)
    if code != 0:
        why = install_output if code is not None else f"install took over {opts.install_timeout:g} s\n{install_output}"
        return _failed(row, "install", why)

    token = secrets.token_urlsafe(24)
    env.update(PORT=str(free_port()), MCP_AUTH_TOKEN=token, MCP_HOST="loopback")  # never other interfaces
    url = f"http://127.0.0.1:{env['PORT']}/mcp"
    log = work / "serve.log"
    with log.open("wb") as out:
        start = time.monotonic()
        process = subprocess.Popen(
            [str(ENTRYPOINT), "serve"], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=work
        )  # servers write caches into their cwd
        try:
            result = anyio.run(
                partial(first_answer, process, url, token=token, timeout=opts.answer_timeout, poll_interval=0.1)
            )
            elapsed = time.monotonic() - start
        finally:
            stop(process)
    serve_output = log.read_text(errors="replace")
    if result is None:
        return _failed(row, "serve", f"{serve_output}\n(exit {process.returncode})")
    if not result.ok:
        return _failed(row, "answer", serve_output, result.error)
    row.update(
        answer_s=round(elapsed, 2),
        tools=len(result.tools),
        tool_names=result.tools,
        result="ok",
        server_name=result.server_name,
        protocol=result.protocol_version,
    )
    shutil.rmtree(work, ignore_errors=True)
    return row


def sdk_version(env_dir: Path, runtime: str) -> str | None:
    """The MCP SDK the install resolved (Python ``mcp``, npm ``@modelcontextprotocol/sdk``), if any."""
    if runtime == "python":
        found = sorted(env_dir.glob("lib/python*/site-packages/mcp-*.dist-info"))
        return found[0].name.removeprefix("mcp-").removesuffix(".dist-info") if found else None
    top = env_dir / "node_modules" / "@modelcontextprotocol" / "sdk" / "package.json"
    nested = "node_modules/*/node_modules/@modelcontextprotocol/sdk/package.json"
    manifests = [top] if top.exists() else sorted(env_dir.glob(nested))
    if not manifests:
        return None
    try:
        return json.loads(manifests[0].read_text()).get("version")
    except (OSError, ValueError):
        return None


def widened_cutoff(install_output: str) -> str | None:
    """The later cutoff the install fell back to when nothing resolved as of the release, if it did.

    ``entrypoint.sh install`` retries as of release + 1 day, 7 days, 30 days, then without a cutoff, and says
    so; the last retry it announced is the one that installed (or failed). "none" means no cutoff at all.
    """
    tries = re.findall(r"retrying with dependencies as of (\S+)|(retrying WITHOUT a cutoff)", install_output)
    if not tries:
        return None
    later, without = tries[-1]
    return "none" if without else later


def without_local_paths(row: dict, cache_dir: Path, home: Path | None = None) -> dict:
    """The row with the bench cache directory shown as ``<cache>`` and the home directory as ``~`` in the
    quoted output, so committed results name no directory of the machine they ran on."""
    home = home or Path.home()

    def scrub(text: str) -> str:
        return text.replace(str(cache_dir), "<cache>").replace(str(home), "~")

    return {k: scrub(v) if k in ("detail", "output_tail") and isinstance(v, str) else v for k, v in row.items()}


def _failed(row: dict, phase: str, output: str, error: str | None = None) -> dict:
    why = classify(phase, output, error)
    row.update(
        phase=phase, reason=why["category"], detail=why["detail"], remedy=why["remedy"], output_tail=output[-3000:]
    )
    if error:
        row["error"] = error
    return row


# ------------------------------------------------------------------------------------------ reporting


OFFLINE = "a download outside the registries"


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


def summarize(rows: list[dict]) -> dict:
    """Success rate per runtime over the as-of-release rows."""
    out = {}
    for runtime in ("python", "npm"):
        mine = [r for r in rows if r["runtime"] == runtime and r["mode"] == "as-of-release"]
        ok = sum(r["result"] == "ok" for r in mine)
        # Failures only because the benchmark machine reaches nothing but PyPI and npm (Fly reaches the internet).
        offline = sum(r["result"] != "ok" and r["reason"] == OFFLINE for r in mine)
        reachable = len(mine) - offline
        good = [r for r in mine if r["result"] == "ok"]
        out[runtime] = {
            "ok": ok,
            "total": len(mine),
            "rate": round(ok / len(mine), 4) if mine else None,
            "goal_met": bool(mine) and ok / len(mine) >= GOAL,
            "blocked_downloads": offline,
            "rate_with_downloads": round(ok / reachable, 4) if reachable else None,
            "median_install_s": _median([r["install_s"] for r in good]),
            "median_answer_s": _median([r["answer_s"] for r in good]),
        }
    return out


def _caches(fresh: bool | None) -> str:
    """How warm the installers' caches were: a cold run measures what a first deploy pays."""
    known = {True: "cold caches (`--fresh`)", False: "uv/npm caches kept from earlier runs"}
    return known.get(fresh, "caches unrecorded")


def _cell(value, fmt: str = "{}") -> str:
    return "—" if value is None else fmt.format(value)


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(report: dict) -> str:
    v = report["versions"]
    rows = report["rows"]
    summary = report["summary"]
    gateway = v.get("gateway") or f"mcp-proxy {v.get('mcp-proxy', '?')}"  # reports from before the relay
    lines = [
        "# Success rate: real no-credential MCP servers, detect → install → serve → tools/list",
        "",
        f"Run {report['date']} ({report['elapsed_min']} min) on the benchmark machine ({v['cpus']} CPUs, shared), "
        f"{report['parallel']} servers at a time, {_caches(report.get('fresh'))}. Servers' Python "
        f"{v['server_python']}, Node {v['node']}, npm {v['npm']}, {v['uv']}, gateway: {gateway}; catwalk "
        f"{v['catwalk']}. Produced by `bench/success_rate.py`; the list is `bench/servers_success.py`.",
        "",
    ]
    done = sum(r["mode"] == "as-of-release" for r in rows)
    if report.get("partial"):
        lines += [f"**Partial run: {done} of {report['planned']} servers.**", ""]
    if report.get("rerun"):
        again = ", ".join(f"{s} ({d[:16]})" for s, d in sorted(report["rerun"].items()))
        lines += [f"Re-run later with `--merge` (time in UTC): {again}.", ""]
    lines += [
        "| runtime | ok | total | success rate | goal ≥95% | failed only on a blocked download "
        "| rate without those | median install s | median first-answer s |",
        "|---" * 9 + "|",
    ]
    for runtime, s in summary.items():
        if s["total"]:
            without = s.get("rate_with_downloads")
            lines.append(
                f"| {runtime} | {s['ok']} | {s['total']} | {s['rate'] * 100:.1f}% | "
                f"{'met' if s['goal_met'] else 'not met'} | {s.get('blocked_downloads', 0)} "
                f"| {'—' if without is None else f'{without * 100:.1f}%'} "
                f"| {_cell(s.get('median_install_s'))} | {_cell(s.get('median_answer_s'))} |"
            )
    lines += [
        "",
        "*Blocked download*: the install or the start fetched something from outside PyPI and npm "
        "(a prebuilt binary from GitHub, a browser from a CDN, data from the project's site), which the "
        "benchmark machine cannot reach and a Fly machine or builder can. The success rate counts them as failures.",
    ]
    lines += [
        "",
        "install s: `entrypoint.sh install` with warm uv/npm caches when the cache directory was reused; "
        "first-answer s: from `entrypoint.sh serve` to the tools/list answer, through the auth gateway.",
        "",
        "| server | runtime | version | install s | first-answer s | tools | result | reason |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: r["runtime"] != "python"):  # Python first, each in list order
        if r["mode"] != "as-of-release":
            continue
        reason = "" if r["result"] == "ok" else f"{r['reason']}: `{_escape(r.get('detail') or '')[:160]}`"
        lines.append(
            f"| {r['server']} | {r['runtime']} | {_cell(r['version'])} | {_cell(r['install_s'], '{:.1f}')} "
            f"| {_cell(r['answer_s'], '{:.1f}')} | {_cell(r['tools'])} | {r['result']} | {reason} |"
        )
    widened = [r for r in rows if r["mode"] == "as-of-release" and r.get("widened_cutoff")]
    if widened:

        def cutoff(value: str) -> str:
            return "no cutoff" if value == "none" else f"as of {value}"

        later = ", ".join(f"{r['server']} ({cutoff(r['widened_cutoff'])}, {r['result']})" for r in widened)
        lines += [
            "",
            "Nothing resolved as of the release, so `entrypoint.sh install` retried with a later cutoff "
            f"(release + 1 day, 7 days, 30 days, then none): {later}.",
        ]
    plain = [r for r in rows if r["mode"] == "plain"]
    if plain:
        pinned = {r["server"]: r for r in rows if r["mode"] == "as-of-release"}
        lines += [
            "",
            "## As-of-release resolution vs plain resolution",
            "",
            f"Python servers whose pinned release predates mcp {MCP_2[1]} ({report.get('mcp2_released_at')}), and "
            "any server whose as-of-release install found no resolution. "
            "*As of release*: catwalk's default (dependencies no newer than the release + 1 h). *Plain*: "
            "MCP_EXCLUDE_NEWER=none, the newest dependencies, as `uvx NAME==VERSION` resolves today.",
            "",
            "| server | released | as of release: result (mcp SDK) | plain: result (mcp SDK) | plain failure |",
            "|---|---|---|---|---|",
        ]
        for r in plain:
            base = pinned.get(r["server"], {})
            why = "" if r["result"] == "ok" else f"{r['reason']}: `{_escape(r.get('detail') or '')[:140]}`"
            lines.append(
                f"| {r['server']} | {(r.get('resolved_at') or '')[:10]} "
                f"| {base.get('result', '—')} ({base.get('sdk') or '—'}) "
                f"| {r['result']} ({r.get('sdk') or '—'}) | {why} |"
            )
    failures = [r for r in rows if r["result"] != "ok" and r["mode"] == "as-of-release"]
    lines += ["", "## Failures", ""]
    if not failures:
        lines.append("- none")
    for r in failures:
        note = EXPLANATIONS.get(r["server"])
        lines.append(
            f"- **{r['server']}** ({r['runtime']} {r['version']}, failed at {r['phase']}): "
            f"{r['reason']}. `{_escape(r.get('detail') or '')[:240]}`. "
            f"{note or ('What catwalk could do: ' + r['remedy'] if r.get('remedy') else '')}"
        )
    return "\n".join(lines) + "\n"


def versions(python: str) -> dict:
    def out(*cmd: str) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False).stdout.strip()
        except OSError:
            return "?"

    return {
        "server_python": out(python, "-c", "import platform; print(platform.python_version())"),
        "bench_python": platform.python_version(),
        "node": out(str(image_node_bin() / "node"), "--version"),
        "npm": out("npm", "--version"),
        "uv": out(str(VENV_BIN / "uv"), "--version"),
        "gateway": f"catwalk's relay on h11 {dist_version('h11')}",
        "catwalk": out("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD")
        + (
            " + uncommitted changes"
            if out("git", "-C", str(ROOT), "status", "--porcelain", "--", "deploy", "components", "bench")
            else ""
        ),
        "cpus": os.cpu_count(),
    }


# ---------------------------------------------------------------------------------------------- main


def select(all_cases: list[Case], only: str | None, runtime: str | None, limit: int | None) -> list[Case]:
    chosen = [c for c in all_cases if runtime in (None, c.runtime)]
    if only:
        names = [n.strip() for n in only.split(",") if n.strip()]
        chosen = [c for c in chosen if any(n == c.spec or n in c.spec for n in names)]
    return chosen[:limit] if limit else chosen


def main(argv: list[str] | None = None) -> int:
    global PYTHON_312
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated specs (or parts of them) to run")
    parser.add_argument("--runtime", choices=("python", "npm"))
    parser.add_argument("--limit", type=int, help="run the first N selected servers")
    parser.add_argument(
        "--compare-plain", action="store_true", help="also install pre-mcp-2 Python servers with MCP_EXCLUDE_NEWER=none"
    )
    parser.add_argument("--parallel", type=int, default=2, choices=(1, 2))
    parser.add_argument("--install-timeout", type=float, default=600)
    parser.add_argument("--answer-timeout", type=float, default=120)
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=DEFAULT_CACHE,
        help=f"MCP_HOME, uv/npm caches and scratch dirs, reused between runs (default {DEFAULT_CACHE})",
    )
    parser.add_argument("--fresh", action="store_true", help="empty the cache directory first (cold caches)")
    parser.add_argument("--output", type=Path, help="results base path (default bench/results/success_rate)")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="replace the selected servers' rows in the existing results instead of starting anew",
    )
    parser.add_argument(
        "--reclassify",
        action="store_true",
        help="re-derive failure reasons from the saved output and rewrite the tables; run nothing",
    )
    opts = parser.parse_args(argv)
    if opts.reclassify:
        base = opts.output or RESULTS / "success_rate"
        report = json.loads(base.with_suffix(".json").read_text())
        for row in report["rows"]:
            if row["result"] != "ok":
                why = classify(row["phase"], row.get("output_tail", ""), row.get("error"))
                row.update(reason=why["category"], detail=why["detail"], remedy=why["remedy"])
        report["summary"] = summarize(report["rows"])
        write(report, base)
        print(base.with_suffix(".md").read_text())
        return 0

    PYTHON_312 = image_python(required=True)
    chosen = select(cases(), opts.only, opts.runtime, opts.limit)
    if not chosen:
        parser.error("no server matches --only/--runtime")
    subset = bool(opts.only or opts.runtime or opts.limit) and not opts.merge
    base = opts.output or RESULTS / ("success_rate-subset" if subset else "success_rate")
    if opts.fresh:
        shutil.rmtree(opts.cache_dir, ignore_errors=True)
    opts.cache_dir.mkdir(parents=True, exist_ok=True)
    clients = Clients.make(cache=DiskCache(opts.cache_dir / "detect"))
    mcp2 = detect(MCP_2[0], version=MCP_2[1], runtime="python", clients=clients).env()["MCP_RESOLVED_AT"]

    report = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": versions(PYTHON_312),
        "parallel": opts.parallel,
        "fresh": opts.fresh,
        "planned": len(chosen),
        "mcp2_released_at": mcp2,
        "partial": True,
        "elapsed_min": 0,
        "rows": [],
        "summary": {},
    }
    order = {c.spec: i for i, c in enumerate(cases())}
    if opts.merge:  # keep the other servers' rows (those still listed); record when these were re-run
        earlier = json.loads(base.with_suffix(".json").read_text())
        again = {c.spec for c in chosen}
        kept = [r for r in earlier["rows"] if r["server"] not in again and r["server"] in order]
        report.update(
            {k: v for k, v in earlier.items() if k not in ("rows", "rerun")},
            rows=kept,
            partial=True,
            rerun={**earlier.get("rerun", {}), **{s: report["date"] for s in again}},
        )
        report["planned"] = len({r["server"] for r in kept if r["mode"] == "as-of-release"} | again)
    earlier_min = report["elapsed_min"]
    started = time.monotonic()
    lock = threading.Lock()

    def record(row: dict) -> None:
        with lock:
            report["rows"].append(row)
            report["rows"].sort(key=lambda r: (r["mode"] != "as-of-release", order[r["server"]]))
            report["summary"] = summarize(report["rows"])
            report["elapsed_min"] = round(earlier_min + (time.monotonic() - started) / 60, 1)
            report["partial"] = sum(r["mode"] == "as-of-release" for r in report["rows"]) < report["planned"]
            write(report, base)
            detail = (row.get("detail") or "")[:120]
            tail = f"{row['tools']} tools" if row["result"] == "ok" else f"{row['reason']}: {detail}"
            done = sum(r["mode"] == "as-of-release" for r in report["rows"])
            print(
                f"[{done}/{report['planned']} servers] {row['mode']:>13} {row['server']:<45} "
                f"{row['result']:<4} install {row['install_s']} s, answer {row['answer_s']} s; {tail}",
                flush=True,
            )

    def one(case: Case) -> None:
        row = without_local_paths(run_case(case, clients, opts.cache_dir, opts), opts.cache_dir)
        record(row)
        pre_mcp2 = case.runtime == "python" and row.get("resolved_at") and row["resolved_at"] < mcp2
        unresolved = row["phase"] == "install" and row["reason"] == "no dependency resolution"
        if opts.compare_plain and (pre_mcp2 or unresolved):
            record(without_local_paths(run_case(case, clients, opts.cache_dir, opts, plain=True), opts.cache_dir))

    with ThreadPoolExecutor(opts.parallel) as pool:
        list(pool.map(one, chosen))
    write(report, base)
    print(base.with_suffix(".md").read_text())
    return 0


def write(report: dict, base: Path) -> None:
    base.parent.mkdir(parents=True, exist_ok=True)
    for suffix, text in ((".json", json.dumps(report, indent=1) + "\n"), (".md", markdown(report))):
        tmp = base.with_name(base.name + suffix + ".tmp")
        tmp.write_text(text)
        tmp.replace(base.with_name(base.name + suffix))


if __name__ == "__main__":
    sys.exit(main())
