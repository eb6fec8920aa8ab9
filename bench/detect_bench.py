"""Detection benchmark: cold and warm time over the labelled set, requests per spec, and accuracy.

Run by hand (it talks to the real registries): ``.venv/bin/python -m bench.detect_bench``. Cold means
an empty cache directory and a new HTTP session; warm repeats with the cache the cold run filled.
Accuracy compares each result with the labels in ``bench/servers.py`` (taken with the registries' own
clients); a spec labelled with a refusal counts as right when detection refuses it for that reason.
Results go to ``bench/results/detect.json`` and ``detect.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import threading
import time
from datetime import datetime, timezone
from importlib.metadata import version as dist_version
from pathlib import Path

from bench.servers import SERVERS, Server
from components.detect import DetectError, DiskCache, detect_many, make_session

RESULTS = Path(__file__).parent / "results"
NOTES = """\
## Notes

- Labels come from the registries' own clients (`npm view`, `pip download` + the wheel's
  `entry_points.txt`), never from catwalk's output; see `bench/servers.py`.
- History: the first run over this set (2026-11-25) had runtime right for 76/85 and launch for 79/85.
  The misses were names published on both registries by different authors (`duckduckgo-mcp-server`,
  `mysql-mcp-server`, `wikipedia-mcp`, `tavily-mcp`, `mcp-atlassian`, `postgres-mcp`, `mcp-obsidian`,
  `mongodb-mcp-server`) and one label that contradicted the refusal policy (`mcp-text-editor`'s newest
  release needs Python 3.13). Detection then gained two rules: a bundled SDK counts as MCP like a declared
  dependency (npm packages such as `mongodb-mcp-server` bundle it), and among two MCP servers the one with
  a release history beats a one-off port (at least twice the releases and three more). Every decision
  on a shared name is printed in `evidence`.
- The npm registry reached here serves trimmed documents (recent versions only, no `time.created`),
  so npm release counts are lower than on the public registry, and the first-publication rule (which
  needs `time.created`) never fires here. The decisions above were checked only against the documents
  served here; with full documents some shared names may be decided by a different rule.
"""
REFUSALS = {"python>=3.13": "requires Python", "not-found": "does not exist"}


class CountingSession:
    """Wraps a session to count GET requests (thread-safe), for requests-per-spec figures."""

    def __init__(self, session):
        self.session = session
        self.count = 0
        self.lock = threading.Lock()

    def get(self, *args, **kwargs):
        with self.lock:
            self.count += 1
        return self.session.get(*args, **kwargs)


def judge(server: Server, result) -> dict:
    row = {
        "spec": server.spec,
        "expected_runtime": server.runtime,
        "expected_launch": server.launch,
        "expect": server.expect,
    }
    if isinstance(result, DetectError):
        reason = REFUSALS.get(server.expect)
        right = reason is not None and reason in str(result)
        row.update(runtime=None, launch=None, error=str(result), runtime_ok=right, launch_ok=right)
        return row
    row.update(
        runtime=result.runtime,
        launch=result.launch,
        version=result.version,
        pinned=result.pinned,
        resolved_at=result.env().get("MCP_RESOLVED_AT"),
        evidence="; ".join(result.evidence),
    )
    ok = server.expect == "ok"
    row["runtime_ok"] = ok and result.runtime == server.runtime
    row["launch_ok"] = ok and tuple(result.launch) == tuple(server.launch or ())
    return row


def run(specs: list[str], cache_dir: Path, workers: int | None) -> tuple[float, int, list]:
    session = CountingSession(make_session())
    start = time.perf_counter()
    cache = DiskCache(cache_dir)
    results = detect_many(specs, session=session, cache=cache, max_workers=workers)  # type: ignore[arg-type]
    return time.perf_counter() - start, session.count, results


def markdown(report: dict) -> str:
    lines = [
        f"# Detection benchmark — {report['date']}",
        "",
        f"Machine: {report['machine']}; catwalk detection with {report['workers']} workers; "
        f"registries: PyPI and npm (live).",
        "",
        "| run | specs | seconds | registry requests | requests per spec |",
        "|---|---|---|---|---|",
    ]
    for name in ("cold", "warm"):
        r = report[name]
        lines.append(
            f"| {name} | {report['specs']} | {r['seconds']:.3f} | {r['requests']} | "
            f"{r['requests'] / report['specs']:.2f} |"
        )
    acc = report["accuracy"]
    lines += [
        "",
        f"Runtime right: **{acc['runtime_ok']}/{acc['total']}**; launch right: **{acc['launch_ok']}/{acc['total']}** "
        f"({100 * acc['launch_ok'] / acc['total']:.1f}%). Refusals expected by the labels count as right when "
        "detection refuses for that reason.",
        "",
        "| spec | runtime | launch | pinned / error | right |",
        "|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        right = "✅" if row["runtime_ok"] and row["launch_ok"] else "❌"
        detail = row.get("pinned") or (row.get("error") or "")[:110]
        launch = " ".join(row["launch"] or []) if row.get("launch") else "—"
        lines.append(f"| `{row['spec']}` | {row['runtime'] or 'refused'} | `{launch}` | {detail} | {right} |")
    misses = [r for r in report["rows"] if not (r["runtime_ok"] and r["launch_ok"])]
    if misses:
        lines += ["", "## Misses", ""]
        for row in misses:
            lines.append(
                f"- `{row['spec']}`: expected {row['expected_runtime']} {row['expected_launch']}, "
                f"got {row['runtime']} {row['launch']} {row.get('error', '')}"
            )
    return "\n".join(lines) + "\n\n" + NOTES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=None, help="concurrent detections (default: catwalk's)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    specs = [s.spec for s in SERVERS]
    with tempfile.TemporaryDirectory(prefix="catwalk-bench-") as tmp:
        cold_s, cold_n, results = run(specs, Path(tmp), args.workers)
        warm_s, warm_n, warm = run(specs, Path(tmp), args.workers)
    same = all(str(a) == str(b) if isinstance(a, DetectError) else a == b for a, b in zip(results, warm, strict=True))
    rows = [judge(server, result) for server, result in zip(SERVERS, results, strict=True)]
    from components.detect.core import MAX_WORKERS

    report = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": f"{platform.machine()}, {platform.python_version()}, {__import__('os').cpu_count()} cores",
        "versions": {d: dist_version(d) for d in ("requests", "urllib3", "packaging", "node-semver", "pydantic")},
        "workers": args.workers or MAX_WORKERS,
        "specs": len(specs),
        "cold": {"seconds": round(cold_s, 3), "requests": cold_n},
        "warm": {"seconds": round(warm_s, 3), "requests": warm_n, "same_results": same},
        "accuracy": {
            "total": len(rows),
            "runtime_ok": sum(r["runtime_ok"] for r in rows),
            "launch_ok": sum(r["launch_ok"] for r in rows),
        },
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "detect.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    (args.out / "detect.md").write_text(markdown(report))
    acc = report["accuracy"]
    print(
        f"cold {cold_s:.2f}s ({cold_n} requests), warm {warm_s:.3f}s ({warm_n} requests), same={same}; "
        f"runtime {acc['runtime_ok']}/{len(rows)}, launch {acc['launch_ok']}/{len(rows)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
