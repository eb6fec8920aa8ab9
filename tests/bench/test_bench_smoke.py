"""The benchmarks' pure parts, offline and fast: the server list, failure classification, tables.

The benchmarks themselves (bench/success_rate.py, bench/api_cost.py) are run by hand; these tests make sure
their bookkeeping says the right thing about what they measured.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench import api_cost, success_rate
from bench.image_runtime import ROOT, gateway_specs, image_node_major
from bench.servers_success import cases
from components.config import StackConfig


def test_the_list_has_at_least_40_python_and_50_npm_servers_each_pinned_once():
    listed = cases()
    assert sum(c.runtime == "python" for c in listed) >= 40
    assert sum(c.runtime == "npm" for c in listed) >= 50
    assert len({c.spec for c in listed}) == len(listed)
    assert all(c.version for c in listed), [c.spec for c in listed if not c.version]


def test_labelled_servers_needing_credentials_a_service_or_a_project_are_not_in_the_list():
    specs = {c.spec for c in cases()}
    assert "@pandacss/mcp" not in specs  # exits without a panda.config.* beside it
    assert "@modelcontextprotocol/server-github" not in specs  # credentials
    assert "@modelcontextprotocol/server-postgres" not in specs  # a running database
    assert "@assistant-ui/mcp-docs-server" not in specs  # a stdio proxy to a hosted server, by its README
    assert "mcp-server-duckdb" in specs  # "config" servers given their path stay


def test_extra_servers_given_a_directory_get_their_own_scratch_directory():
    by_spec = {c.spec: c for c in cases()}
    assert by_spec["@agent-infra/mcp-server-filesystem"].args == ("--allowed-directories", "{work}")
    assert all("/tmp" not in a for c in cases() for a in c.args)  # never a directory shared with other processes


def test_the_list_includes_servers_released_before_mcp_2():
    specs = {c.spec for c in cases()}
    assert {"mcp-server-sqlite", "mcp-scholarly", "mcp-youtube-transcript"} <= specs


def test_config_needing_servers_get_a_scratch_directory_placeholder():
    by_spec = {c.spec: c for c in cases()}
    assert by_spec["mcp-server-duckdb"].args == ("--db-path", "{work}/bench.duckdb")
    assert dict(by_spec["cli-mcp-server"].env)["ALLOWED_DIR"] == "{work}"
    assert "uvx://mcp-server-time" not in by_spec  # the same install as mcp-server-time


@pytest.mark.parametrize(
    ("phase", "output", "category"),
    [
        (
            "install",
            "  × No solution found when resolving dependencies:\nError: install of x failed",
            "no dependency resolution",
        ),
        (
            "serve",
            "Traceback\nImportError: cannot import name 'FastMCP' from 'mcp.server' (/x/mcp/server.py)",
            "incompatible with mcp 2.x",
        ),
        (
            "serve",
            "Traceback\nModuleNotFoundError: No module named 'bibtexparser.bibdatabase'",
            "a newer dependency broke it",
        ),
        (
            "serve",
            "OSError: libcairo.so.2: cannot open shared object file: No such file or directory",
            "needs a system library",
        ),
        ("serve", "Error: BRAVE_API_KEY environment variable is required", "needs credentials"),
        ("detect", "PyPI project x 1.2 requires Python >=3.13, but the image runs Python 3.12", "needs Python >= 3.13"),
        ("serve", "starting\nshutting down\n(exit 1)", "exited at start"),
        (
            "serve",
            "Failed to connect to SQLite database: Error [ERR_UNKNOWN_BUILTIN_MODULE]: No such built-in "
            "module: node:sqlite\n(exit 1)",
            "needs Node >= 22",
        ),
        (
            "serve",
            "SyntaxError: The requested module 'node:fs/promises' does not provide an export named 'glob'",
            "needs Node >= 22",
        ),
        (
            "serve",
            "TypeError: fetch failed\n  [cause]: Error: getaddrinfo ENOTFOUND svelte.dev",
            "a download outside the registries",
        ),
    ],
)
def test_failures_are_classified_from_the_output_that_shows_them(phase, output, category):
    why = success_rate.classify(phase, output)
    assert why["category"] == category
    assert why["detail"]
    assert all(part in output for part in why["detail"].split(" | "))


def test_a_failed_fetch_is_reported_with_the_host_it_could_not_reach():
    output = (
        "Starting npm package: x@1\nTypeError: fetch failed\n    at fetch_with_timeout (x.mjs:1)\n"
        "  [cause]: Error: getaddrinfo ENOTFOUND svelte.dev\n(exit 1)"
    )
    why = success_rate.classify("serve", output)
    assert why["category"] == success_rate.OFFLINE
    assert "TypeError: fetch failed" in why["detail"] and "ENOTFOUND svelte.dev" in why["detail"]


def test_an_install_that_fell_back_to_a_later_cutoff_says_which():
    output = (
        "Installing Python package markitdown-mcp==0.0.1a8 (dependencies as of 2026-10-21T21:41:00Z)\n"
        "  × No solution found when resolving dependencies:\n"
        "No resolution of markitdown-mcp==0.0.1a8 as of 2026-10-21T21:41:00Z; retrying with dependencies as of "
        "2026-10-22T20:41:00Z\nInstalled 40 packages\n"
    )
    assert success_rate.widened_cutoff(output) == "2026-10-22T20:41:00Z"
    assert (
        success_rate.widened_cutoff(
            output + "WARNING: no resolution of x even as of y: retrying WITHOUT a cutoff, with the newest\n"
        )
        == "none"
    )
    assert success_rate.widened_cutoff("Installed 3 packages\n") is None


def test_a_silent_timeout_is_reported_as_no_answer_in_time():
    why = success_rate.classify("answer", "Starting Python module: x==1\n", "no answer within 120 s")
    assert why["category"] == "no answer in time"


def test_a_traceback_is_summarised_by_its_last_error_line():
    output = "Starting\nTraceback (most recent call last):\n  File x\nValueError: bad port\nother noise\n"
    assert success_rate.classify("serve", output)["detail"] == "ValueError: bad port"


def _row(server, runtime, result, mode="as-of-release", **extra):
    row = {
        "server": server,
        "runtime": runtime,
        "version": "1.0",
        "mode": mode,
        "install_s": 2.5,
        "answer_s": 1.25 if result == "ok" else None,
        "tools": 3 if result == "ok" else None,
        "result": result,
        "phase": None,
        "reason": None,
        "note": "",
        "resolved_at": "2025-01-02T00:00:00Z",
    }
    if result != "ok":
        row.update(phase="serve", reason="exited at start", detail="ValueError: a|b", remedy="fix it")
    row.update(extra)
    return row


def test_success_rate_counts_each_runtime_over_the_as_of_release_rows_only():
    rows = [_row(f"p{i}", "python", "ok") for i in range(19)] + [
        _row("bad", "python", "fail"),
        _row("bad", "python", "fail", mode="plain"),
        _row("n", "npm", "ok"),
    ]
    summary = success_rate.summarize(rows)
    assert summary["python"] == {
        "ok": 19,
        "total": 20,
        "rate": 0.95,
        "goal_met": True,
        "blocked_downloads": 0,
        "rate_with_downloads": 0.95,
        "median_install_s": 2.5,
        "median_answer_s": 1.25,
    }
    assert summary["npm"]["rate"] == 1.0


def test_failures_on_a_blocked_download_still_count_but_are_shown_apart():
    rows = [_row("a", "npm", "ok"), _row("b", "npm", "fail", reason=success_rate.OFFLINE), _row("c", "npm", "fail")]
    summary = success_rate.summarize(rows)["npm"]
    assert (summary["ok"], summary["total"], summary["blocked_downloads"]) == (1, 3, 1)
    assert summary["rate"] == 0.3333 and summary["rate_with_downloads"] == 0.5
    why = success_rate.classify("install", "npm error Error: getaddrinfo ENOTFOUND cdn.playwright.dev\nnpm error x")
    assert why["category"] == success_rate.OFFLINE and "cdn.playwright.dev" in why["detail"]


def test_success_rate_markdown_has_the_columns_a_rate_per_runtime_and_every_failure():
    rows = [_row("good", "python", "ok"), _row("bad", "npm", "fail"), _row("good", "python", "fail", mode="plain")]
    report = {
        "date": "2026-11-25T13:00:00+00:00",
        "elapsed_min": 1.0,
        "parallel": 2,
        "planned": 3,
        "partial": False,
        "mcp2_released_at": "2026-07-28T13:45:33Z",
        "rows": rows,
        "summary": success_rate.summarize(rows),
        "versions": {
            "cpus": 2,
            "server_python": "3.12.1",
            "node": "v20",
            "npm": "11",
            "uv": "uv 0.13",
            "gateway": "catwalk's relay on h11 0.16.0",
            "catwalk": "abc",
        },
    }
    text = success_rate.markdown(report)
    assert "| server | runtime | version | install s | first-answer s | tools | result | reason |" in text
    assert "| good | python | 1.0 | 2.5 | 1.2 | 3 | ok |  |" in text
    assert "| python | 1 | 1 | 100.0% | met |" in text
    assert "| npm | 0 | 1 | 0.0% | not met |" in text
    assert "**bad** (npm 1.0, failed at serve): exited at start" in text
    assert "ValueError: a\\|b" in text  # a pipe in a detail does not break the table
    assert "| good | 2025-01-02 | ok (—) | fail (—) |" in text  # the plain-resolution comparison
    assert "later cutoff" not in text
    assert "caches unrecorded" in text  # an old report without the flag
    assert "cold caches (`--fresh`)" in success_rate.markdown({**report, "fresh": True})


# What a success-rate report says it ran on, where a test does not look at it.
VERSIONS = {
    "cpus": 2,
    "server_python": "3.12",
    "node": "v20",
    "npm": "11",
    "uv": "uv",
    "gateway": "catwalk's relay on h11 0.16.0",
    "catwalk": "abc",
}


def test_the_markdown_names_servers_installed_with_a_later_cutoff():
    rows = [_row("late", "python", "ok", widened_cutoff="2026-10-22T20:41:00Z"), _row("on-time", "python", "ok")]
    report = {
        "date": "d",
        "elapsed_min": 1.0,
        "parallel": 2,
        "planned": 2,
        "partial": False,
        "rows": rows,
        "summary": success_rate.summarize(rows),
        "versions": VERSIONS,
    }
    text = success_rate.markdown(report)
    assert "retried with a later cutoff" in text and "late (as of 2026-10-22T20:41:00Z, ok)" in text
    assert "on-time (" not in text


def test_a_partial_run_says_how_many_rows_it_has():
    report = {
        "date": "d",
        "elapsed_min": 0,
        "parallel": 2,
        "planned": 80,
        "partial": True,
        "rows": [],
        "summary": {"python": {"ok": 0, "total": 0, "rate": None, "goal_met": False}},
        "versions": VERSIONS,
    }
    assert "Partial run: 0 of 80 servers." in success_rate.markdown(report)


def test_subset_selection_by_name_part_runtime_and_limit():
    listed = cases()
    assert [c.spec for c in success_rate.select(listed, "mcp-scholarly", None, None)] == ["mcp-scholarly"]
    assert all(c.runtime == "npm" for c in success_rate.select(listed, None, "npm", None))
    assert len(success_rate.select(listed, None, None, 3)) == 3


def test_api_cost_stack_is_a_valid_stack_config_of_custom_commands_on_a_prebuilt_image():
    doc = api_cost.stack_config(50)["config"]
    stack = StackConfig.model_validate({k.removeprefix("catwalk:"): v for k, v in doc.items()})
    assert len(stack.servers) == 50 and stack.image and stack.verify is False
    assert {s.effective_runtime for s in stack.servers} == {"custom"}


def test_api_cost_folds_names_and_ids_into_endpoints_and_counts_mutating_calls():
    calls = [
        {"method": "GET", "path": "/v1/apps/catwalk-bench-s07", "status": 404},
        {"method": "POST", "path": "/v1/apps", "status": 201},
        {"method": "GET", "path": "/v1/apps/catwalk-bench-s07/machines/3d8d9e1c/wait", "status": 200},
        {"method": "GET", "path": "/v1/apps/catwalk-bench-s08/machines/4a1b/wait", "status": 200},
    ]
    counted = api_cost.tally(calls)
    assert counted["total"] == 4 and counted["mutating"] == 1 and counted["non_2xx"] == 1
    assert counted["by_method"] == {"GET": 3, "POST": 1}
    assert counted["by_endpoint"]["GET /v1/apps/{app}/machines/{id}/wait"] == 2


def test_api_cost_ratios_are_against_the_one_server_baseline_of_the_same_run():
    def row(n, total):
        return {"servers": n, "first": {"total": total}}

    rows = [row(1, 12), row(10, 130), row(50, 600)]
    api_cost.ratios(rows)
    assert [r["ratio_total"] for r in rows] == [1.0, 10.83, 50.0]
    assert [r["calls_per_server"] for r in rows] == [12.0, 13.0, 12.0]
    text = api_cost.markdown(
        {
            "date": "d",
            "parallel": 4,
            "versions": {"python": "3", "pulumi": "3", "catwalk": "a"},
            "rows": [
                {
                    **r,
                    "first": {
                        "total": r["first"]["total"],
                        "by_method": {"GET": 1},
                        "by_endpoint": {"GET /v1/apps/{app}": 1},
                        "seconds": 1.0,
                        "non_2xx": 0,
                    },
                    "noop": {"total": 0, "mutating": 0, "by_method": {}, "by_endpoint": {}, "non_2xx": 0},
                }
                for r in rows
            ],
        }
    )
    assert re.search(r"\| 10 \| 130 \| 1 \| 0 \| 129 \| 10\.83× \| 13\.0 \| 1\.083× \| 1\.0 \| 0 \| \*\*0\*\* \|", text)
    assert "made no Fly API call at all" in text


def test_the_installed_mcp_sdk_version_is_read_from_the_server_environment(tmp_path):
    dist = tmp_path / "python" / "mcp-x==1.0" / "lib" / "python3.12" / "site-packages" / "mcp-1.27.0.dist-info"
    dist.mkdir(parents=True)
    assert success_rate.sdk_version(success_rate.server_env_dir(tmp_path, "python", "mcp-x==1.0"), "python") == "1.27.0"
    sdk = tmp_path / "npm" / "@a+b@1.0" / "node_modules" / "@modelcontextprotocol" / "sdk"
    sdk.mkdir(parents=True)
    (sdk / "package.json").write_text('{"version": "1.20.2"}')
    assert success_rate.sdk_version(success_rate.server_env_dir(tmp_path, "npm", "@a/b@1.0"), "npm") == "1.20.2"
    assert success_rate.sdk_version(success_rate.server_env_dir(tmp_path, "npm", "other@1.0"), "npm") is None


def test_benchmarks_run_servers_on_the_node_major_the_image_is_built_from(tmp_path):
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("# syntax=docker/dockerfile:1\nFROM node:24-bookworm-slim AS node\nFROM python:3.12-slim\n")
    assert image_node_major(dockerfile) == 24
    dockerfile.write_text("FROM python:3.12-slim\n")
    with pytest.raises(SystemExit, match="no `FROM node:<major>` stage"):
        image_node_major(dockerfile)


def test_benchmarks_build_the_gateway_venv_with_what_the_image_installs_and_the_project_allows():
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    specs = [Requirement(spec) for spec in gateway_specs()]
    assert specs and specs[0].name == "h11", "the gateway's venv starts from h11"
    allowed = {
        canonicalize_name(req.name): req
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
        for req in [Requirement(line)]
    }
    for spec in specs:
        pins = list(spec.specifier)
        assert len(pins) == 1 and pins[0].operator == "==", f"the image pins {spec} exactly"
        name = canonicalize_name(spec.name)
        if name == "cryptography":  # comes in through PyJWT[crypto]
            assert "crypto" in allowed["pyjwt"].extras
            continue
        assert name in allowed, f"requirements.txt does not allow {spec.name}, which the image installs"
        bounds = allowed[name].specifier
        assert bounds.contains(pins[0].version), f"requirements.txt {allowed[name]} excludes the image's {spec}"


def test_success_rate_rows_name_no_local_directory():
    row = {
        "server": "x",
        "detail": "cannot import (/srv/bench-cache/home/python/x/lib/site.py)",
        "output_tail": 'File "/home/me/.pyenv/versions/3.12.1/lib/python3.12/asyncio/runners.py"\n',
        "result": "failed",
    }
    clean = success_rate.without_local_paths(row, Path("/srv/bench-cache"), home=Path("/home/me"))
    assert clean["detail"] == "cannot import (<cache>/home/python/x/lib/site.py)"
    assert clean["output_tail"] == 'File "~/.pyenv/versions/3.12.1/lib/python3.12/asyncio/runners.py"\n'
    assert clean["server"] == "x" and clean["result"] == "failed"


def test_the_latency_table_gives_each_modes_overhead_over_the_servers_own_http() -> None:
    from bench import latency

    def wave(clients: int, p50: float) -> dict:
        return {"clients": clients, "calls": 200, "errors": 0, "timed_out": False, "p50_ms": p50, "p99_ms": p50 * 2,
                "calls_per_s": round(1000 / p50, 1)}  # fmt: skip

    report = {"date": "d", "rev": "r", "calls": 200, "modes": [
        {"mode": "native", "waves": [wave(1, 1.5)], "rss_kb": 102400},
        {"mode": "catwalk", "waves": [wave(1, 1.75)], "rss_kb": 24576},
        {"mode": "mcp-proxy", "waves": [wave(1, 2.5)], "rss_kb": None},
    ]}  # fmt: skip
    text = latency.markdown(report)
    assert "| catwalk | 1 | 1.75 | 3.5 | 571.4 | 0 | 24.0 |" in text
    assert "| mcp-proxy | 1 | 2.5 | 5.0 | 400.0 | 0 | ? |" in text
    assert "- catwalk: +0.250 ms" in text and "- mcp-proxy: +1.000 ms" in text
    assert "- mcp-proxy: p50 0.70×, calls/s 1.43×" in text


def test_the_container_cold_start_table_gives_install_at_start_over_baked_per_server() -> None:
    from bench import container_cold_start as ccs

    rows = [
        {
            "server": "mcp-server-time",
            "version": "2026.10.19",
            "baked": ccs.summarize([0.9, 1.1, 1.0]),
            "install-at-start": ccs.summarize([6.0, 5.0, None]),
        },
        {
            "server": "@modelcontextprotocol/server-memory",
            "version": "2026.8.31",
            "baked": ccs.summarize([None, None]),
            "install-at-start": ccs.summarize([7.0, 8.0]),
        },
    ]
    report = {"date": "d", "commit": "c", "engine": "Docker 28 (overlay2)", "load": "1.0", "repeats": 3, "rows": rows}
    table = ccs.markdown(report)
    assert "| `mcp-server-time` 2026.10.19 | 5.50 s (5.00–6.00, 1 failed) | 1.00 s (0.90–1.10) | **5.5×** |" in table
    assert "| `@modelcontextprotocol/server-memory` 2026.8.31 | 7.50 s (7.00–8.00) | fails 2/2 | — |" in table
    assert ccs.ratio(rows[1]) is None
