"""The runtime's pure parts: install cutoff, launch resolution, listen addresses and the bearer check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from catwalk_runtime import cutoff
from catwalk_runtime.auth import BearerAuth
from catwalk_runtime.errors import UsageError
from catwalk_runtime.launch import parse_json_argv, resolve_argv
from catwalk_runtime.serve import listen_hosts


@pytest.mark.parametrize(
    ("resolved_at", "expected"),
    [
        ("2025-04-25T08:27:27.459457Z", "2025-04-25T09:27:27Z"),
        ("2026-09-01T22:46:36.382Z", "2026-09-01T23:46:36Z"),
        ("2026-09-01T23:30:00+00:00", "2026-09-02T00:30:00Z"),
        ("2026-09-01T23:30:00+02:00", "2026-09-01T22:30:00Z"),
        ("2025-04-25", "2025-04-25T01:00:00Z"),
    ],
)
def test_cutoff_is_the_release_time_plus_one_hour_in_utc(resolved_at: str, expected: str) -> None:
    assert cutoff.install_cutoff(resolved_at) == expected


def test_widened_cutoffs_are_a_day_a_week_and_a_month_after_the_release(capsys: pytest.CaptureFixture) -> None:
    """markitdown-mcp 0.0.1a8 needs a certifi uploaded 3 h after it: the installer retries with these."""
    assert cutoff.main(["--widened", "2026-10-21T20:41:13.5Z"]) == 0
    assert capsys.readouterr().out.split() == ["2026-10-22T20:41:13Z", "2026-10-28T20:41:13Z", "2026-11-20T20:41:13Z"]


@pytest.mark.parametrize("bad", ["yesterday", "2025-04-25; rm -rf /", "--exclude-newer", ""])
def test_cutoff_refuses_what_is_not_a_time(bad: str) -> None:
    with pytest.raises(UsageError, match="MCP_RESOLVED_AT"):
        cutoff.install_cutoff(bad)


def _python_env(tmp_path: Path, dist: str, scripts: list[str], modules: tuple[str, ...] = ()) -> Path:
    site = tmp_path / "lib" / "python3.12" / "site-packages"
    info = site / f"{dist}-1.0.dist-info"
    info.mkdir(parents=True)
    if scripts:
        body = "\n".join(f"{s} = pkg:main" for s in scripts)
        (info / "entry_points.txt").write_text(f"[console_scripts]\n{body}\n")
    for module in modules:
        (site / module).mkdir()
    (tmp_path / "bin").mkdir()
    for name in [*scripts, "python"]:
        exe = tmp_path / "bin" / name
        exe.write_text("#!/bin/sh\n")
        exe.chmod(0o755)
    return tmp_path


def test_python_launch_prefers_the_console_script_named_after_the_package(tmp_path: Path) -> None:
    env = _python_env(tmp_path, "mcp_server_git", ["git-helper", "mcp-server-git"])
    argv = resolve_argv("python", env, "mcp-server-git==1.0", [], {"MCP_ARGS": '["-r", "/repo"]'})
    assert argv == [str(env / "bin" / "mcp-server-git"), "-r", "/repo"]


def test_python_launch_uses_the_only_console_script(tmp_path: Path) -> None:
    env = _python_env(tmp_path, "word_document_server", ["word_mcp_server"])
    assert resolve_argv("python", env, "word-document-server", [], {}) == [str(env / "bin" / "word_mcp_server")]


def test_python_launch_falls_back_to_python_m_module(tmp_path: Path) -> None:
    env = _python_env(tmp_path, "some_server", [], modules=("some_server",))
    assert resolve_argv("python", env, "some-server", [], {}) == [
        str(env / "bin" / "python"),
        "-m",
        "some_server",
    ]


def test_python_launch_picks_the_one_mcp_script_among_several(tmp_path: Path) -> None:
    env = _python_env(tmp_path, "office_tools", ["office-cli", "office-mcp"])
    assert resolve_argv("python", env, "office-tools", [], {}) == [str(env / "bin" / "office-mcp")]


def test_empty_launch_falls_back_like_an_absent_one(tmp_path: Path) -> None:
    env = _python_env(tmp_path, "mcp_server_git", ["mcp-server-git"])
    argv = resolve_argv("python", env, "mcp-server-git", [], {"MCP_LAUNCH": "[]"})
    assert argv == [str(env / "bin" / "mcp-server-git")]


def test_python_launch_with_ambiguous_scripts_asks_for_mcp_launch(tmp_path: Path) -> None:
    env = _python_env(tmp_path, "tools", ["a", "b"])
    with pytest.raises(UsageError, match="set MCP_LAUNCH"):
        resolve_argv("python", env, "tools", [], {})


def test_explicit_launch_resolves_inside_the_server_env(tmp_path: Path) -> None:
    env = _python_env(tmp_path, "word_document_server", ["word_mcp_server"])
    launch = json.dumps(["python", "-m", "word_mcp_server"])
    argv = resolve_argv("python", env, "word-document-server", [], {"MCP_LAUNCH": launch})
    assert argv == [str(env / "bin" / "python"), "-m", "word_mcp_server"]
    with pytest.raises(UsageError, match="was not found"):
        resolve_argv("python", env, "x", [], {"MCP_LAUNCH": '["sh"]'})


def _npm_env(tmp_path: Path, name: str, bins: object) -> Path:
    package = tmp_path / "node_modules" / name
    package.mkdir(parents=True)
    (package / "package.json").write_text(json.dumps({"name": name, "bin": bins}))
    (tmp_path / "node_modules" / ".bin").mkdir()
    names = [name.rsplit("/", 1)[-1]] if isinstance(bins, str) else list(bins)  # type: ignore[arg-type]
    for bin_name in names:
        exe = tmp_path / "node_modules" / ".bin" / bin_name
        exe.write_text("#!/bin/sh\n")
        exe.chmod(0o755)
    return tmp_path


def test_npm_launch_uses_the_single_bin_even_with_another_name(tmp_path: Path) -> None:
    env = _npm_env(tmp_path, "@modelcontextprotocol/server-memory", {"mcp-server-memory": "dist/index.js"})
    argv = resolve_argv("npm", env, "@modelcontextprotocol/server-memory@2026.8.31", [], {})
    assert argv == [str(env / "node_modules" / ".bin" / "mcp-server-memory")]


def test_npm_launch_uses_a_string_bin_under_the_unscoped_name(tmp_path: Path) -> None:
    env = _npm_env(tmp_path, "@scope/tool", "cli.js")
    assert resolve_argv("npm", env, "@scope/tool@1.0.0", [], {}) == [str(env / "node_modules" / ".bin" / "tool")]


def test_npm_launch_with_several_bins_asks_for_mcp_launch(tmp_path: Path) -> None:
    env = _npm_env(tmp_path, "multi", {"one": "a.js", "two": "b.js"})
    with pytest.raises(UsageError, match="several bins"):
        resolve_argv("npm", env, "multi", [], {})


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ('"just a string"', "must be a JSON array of strings"),
        ("[1, 2]", "must be a JSON array of strings"),
        ('["ok", "line\\nbreak"]', r"MCP_ARGS\[1\] contains a control character"),
        ("[" + ",".join(['"x"'] * 65) + "]", "the limit is 64"),
    ],
)
def test_args_must_be_a_bounded_array_of_plain_strings(raw: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_json_argv(raw, "MCP_ARGS", allow_empty=True)


@pytest.mark.parametrize(
    ("path", "headers", "allowed"),
    [
        ("/mcp", [(b"authorization", b"Bearer s3cret")], True),
        ("/mcp", [(b"Authorization", b"bearer s3cret")], True),
        ("/sse", [(b"authorization", b"Bearer s3cre")], False),
        ("/sse", [(b"authorization", b"Basic czNjcmV0")], False),
        ("/messages/", [(b"authorization", b"s3cret")], False),
        ("/messages/", [], False),
        ("/anything-new", [], False),
        ("/status", [], True),
        ("/status/", [], False),
    ],
)
def test_bearer_auth_guards_everything_but_status(path: str, headers: list, allowed: bool) -> None:
    assert BearerAuth("s3cret").allows(path, headers) is allowed


@pytest.mark.parametrize(
    ("value", "hosts"),
    [
        (None, ["0.0.0.0", "::"]),
        ("all", ["0.0.0.0", "::"]),
        ("loopback", ["127.0.0.1", "::1"]),
        ("127.0.0.1, ::1", ["127.0.0.1", "::1"]),
    ],
)
def test_listen_hosts_default_to_all_interfaces_and_loopback_on_request(value, hosts) -> None:
    assert listen_hosts(value) == hosts


def test_listen_hosts_refuse_names_that_are_not_addresses() -> None:
    with pytest.raises(UsageError, match="not an IP address"):
        listen_hosts("example.com")
