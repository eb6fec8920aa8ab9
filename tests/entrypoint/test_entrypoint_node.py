"""`entrypoint.sh install` gives an npm server whose engines.node refuses the image's Node a Node.js that fits.

Offline: npm is a fake (through NPM) laid out like npm's own directory, so the entrypoint finds npm's real bundled
semver next to it. The fake installs a package with a chosen engines.node, answers `npm view node-linux-<arch>
versions` from a chosen list and `npm pack` with a tarball whose bin/node is a script printing its version, and
logs every call. The real case (@kubb/mcp on Node 22) is the network test in tests/entrypoint/test_entrypoint.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tools.entrypoint_env import base_env, run_entrypoint, wait_for_file

PACKAGE = "@fake/mcp@1.0.0"
ENV_DIR = "npm/@fake+mcp@1.0.0"

# Stands in for npm: `install` writes the package (engines.node from $FAKE_ENGINES) and a `fake-server` bin
# that records `node --version` in $FAKE_NODE_OUT; `view` prints $FAKE_VERSIONS; `pack` writes a node-linux-*
# tarball whose bin/node prints the packed version. Every call's argv goes to $FAKE_CALLS, one per line.
FAKE_NPM = f"""#!{sys.executable}
import io, json, os, sys, tarfile
from pathlib import Path

args = sys.argv[1:]
with open(os.environ["FAKE_CALLS"], "a") as calls:
    calls.write(" ".join(args) + "\\n")
if args[0] == "install":
    prefix = Path(args[args.index("--prefix") + 1])
    package = prefix / "node_modules" / "@fake" / "mcp"
    package.mkdir(parents=True)
    meta = {{"name": "@fake/mcp", "version": "1.0.0", "bin": {{"fake-server": "server.sh"}}}}
    if os.environ.get("FAKE_ENGINES"):
        meta["engines"] = {{"node": os.environ["FAKE_ENGINES"]}}
    (package / "package.json").write_text(json.dumps(meta))
    if os.environ.get("FAKE_NATIVE"):
        (package / "build").mkdir()
        (package / "build" / "addon.node").write_bytes(b"ELF")
    exe = prefix / "node_modules" / ".bin" / "fake-server"
    exe.parent.mkdir(parents=True)
    exe.write_text('#!/bin/sh\\nnode --version >"$FAKE_NODE_OUT"\\n')
    exe.chmod(0o755)
elif args[0] == "view":
    print(os.environ["FAKE_VERSIONS"])
elif args[0] == "pack" and os.environ.get("FAKE_PACK_FAILS"):
    sys.exit("npm error code ECONNRESET")
elif args[0] == "rebuild" and os.environ.get("FAKE_REBUILD_FAILS"):
    sys.exit("gyp ERR! build error")
elif args[0] == "pack":
    name, version = args[1].rsplit("@", 1)
    destination = Path(args[args.index("--pack-destination") + 1])
    with tarfile.open(destination / f"{{name}}-{{version}}.tgz", "w:gz") as tar:
        for path, text, mode in [
            ("package/bin/node", f"#!/bin/sh\\necho v{{version}}\\n", 0o755),
            ("package/include/node/common.gypi", "{{}}", 0o644),
            ("package/LICENSE", "MIT", 0o644),
            ("package/README.md", "not unpacked", 0o644),
        ]:
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(text), mode
            tar.addfile(info, io.BytesIO(text.encode()))
    print(f"{{name}}-{{version}}.tgz")
elif args[0] == "rebuild":
    with open(os.environ["FAKE_CALLS"], "a") as calls:  # which Node the rebuild runs on, and its headers
        calls.write("rebuild-env " + os.popen("node --version").read().strip() + " "
                    + os.environ.get("npm_config_nodedir", "unset") + "\\n")
else:
    sys.exit(f"fake npm: unexpected {{args}}")
"""

VERSIONS = [
    "16.20.2",
    "18.20.8",
    "20.19.0",
    "22.1.0",
    "22.23.3",
    "23.11.0",
    "24.2.0",
    "24.11.1",
    "25.0.0",
    "26.1.0-rc.1",
]


def real_semver() -> Path:
    npm = shutil.which("npm")
    assert npm, "these tests need npm (for its bundled semver)"
    return Path(os.path.realpath(npm)).parent.parent / "node_modules" / "semver"


@pytest.fixture
def fake_npm(tmp_path: Path) -> Path:
    """tmp/npm/bin/npm-cli: a fake in a directory shaped like npm's, whose semver is the real npm's."""
    root = tmp_path / "npm"
    (root / "bin").mkdir(parents=True)
    (root / "node_modules").mkdir()
    (root / "package.json").write_text(json.dumps({"name": "npm"}))
    (root / "node_modules" / "semver").symlink_to(real_semver())
    cli = root / "bin" / "npm-cli"
    cli.write_text(FAKE_NPM)
    cli.chmod(0o755)
    link = tmp_path / "npm-link"  # as /usr/bin/npm -> …/npm/bin/npm-cli.js
    link.symlink_to(cli)
    return link


def install(tmp_path: Path, npm: Path, engines: str | None, **extra: str) -> tuple[subprocess.CompletedProcess, list]:
    """`entrypoint.sh install` of PACKAGE declaring `engines`; the result and the fake npm's calls."""
    calls = tmp_path / "calls.log"
    calls.write_text("")
    env = env_for(tmp_path, npm, FAKE_ENGINES=engines or "", **extra)
    result = run_entrypoint(env, "install", timeout=60)
    return result, calls.read_text().splitlines()


def env_for(tmp_path: Path, npm: Path, **extra: str) -> dict[str, str]:
    values = {
        "MCP_RUNTIME": "npm",
        "MCP_PACKAGE": PACKAGE,
        "MCP_EXCLUDE_NEWER": "none",
        "MCP_LAUNCH": json.dumps(["fake-server"]),
        "NPM": str(npm),
        "FAKE_CALLS": str(tmp_path / "calls.log"),
        "FAKE_VERSIONS": json.dumps(VERSIONS),
        "FAKE_NODE_OUT": str(tmp_path / "node-version.txt"),
        **extra,
    }
    return base_env(tmp_path / "home", **values)


def running_node() -> str:
    return subprocess.run(["node", "--version"], capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.parametrize("engines", [None, ">=18", f"^{running_node().lstrip('v').split('.')[0]}"])
def test_engines_absent_or_satisfied_installs_no_node_and_asks_the_registry_nothing(
    tmp_path: Path, fake_npm: Path, engines: str | None
):
    result, calls = install(tmp_path, fake_npm, engines)
    assert result.returncode == 0, result.stderr
    assert [call.split()[0] for call in calls] == ["install"]  # no `npm view`, no `npm pack`
    assert "installing Node" not in result.stderr
    env_dir = tmp_path / "home" / ENV_DIR
    assert not (env_dir / ".node").exists()
    assert (env_dir / ".catwalk-installed").read_text() == f"spec={PACKAGE}\ncutoff=\n"


@pytest.mark.parametrize(
    ("engines", "chosen"),
    [
        ("^22.23.3", "22.23.3"),  # never the running Node (the fake versions are not real releases)
        (">=22.5.0", "22.23.3"),  # the newest 22 satisfies it: 22, not 24
        ("^24.5", "24.11.1"),  # no 22 fits: the next LTS major, its newest release
        (">=22.99 || ^24", "24.11.1"),  # 22's newest (22.23.3) is too old; 23 and 25 are not LTS
    ],
)
def test_unsatisfied_engines_installs_the_newest_release_of_the_lowest_lts_major_that_fits(
    tmp_path: Path, fake_npm: Path, engines: str, chosen: str
):
    result, calls = install(tmp_path, fake_npm, engines)
    assert result.returncode == 0, result.stderr
    assert f"{PACKAGE} needs Node {engines}; installing Node {chosen} for it" in result.stderr
    arch = {"x86_64": "x64", "aarch64": "arm64", "arm64": "arm64"}[os.uname().machine]
    assert calls[1].startswith(f"view node-linux-{arch} versions")
    assert calls[2].startswith(f"pack node-linux-{arch}@{chosen} ")  # no --before: patches are security fixes
    assert "--before" not in calls[2]
    node_dir = tmp_path / "home" / ENV_DIR / ".node"
    assert subprocess.run([node_dir / "bin" / "node"], capture_output=True, text=True).stdout == f"v{chosen}\n"
    assert not (node_dir / "include").exists()  # headers only to rebuild native modules
    assert not (node_dir / "README.md").exists()
    marker = (tmp_path / "home" / ENV_DIR / ".catwalk-installed").read_text()
    assert marker == f"spec={PACKAGE}\ncutoff=\nnode={chosen}\n"


def test_engines_only_an_end_of_life_node_satisfies_installs_the_newest_such_with_a_warning(
    tmp_path: Path, fake_npm: Path
):
    """A server that refuses every supported LTS (22 and later) still runs, on the newest end-of-life Node that
    fits, and the install says loudly that it gets no security fixes (never older than 18)."""
    result, calls = install(tmp_path, fake_npm, "<19")
    assert result.returncode == 0, result.stderr
    assert f"{PACKAGE} needs Node <19; installing Node 18.20.8 for it" in result.stderr
    assert f"WARNING: Node 18 is end-of-life (no security fixes); {PACKAGE} accepts no supported Node (<19)" in (
        result.stderr
    )
    assert calls[2].split()[1].endswith("@18.20.8")


def test_a_supported_lts_is_chosen_without_a_warning(tmp_path: Path, fake_npm: Path):
    result, _ = install(tmp_path, fake_npm, "^22.23.3")
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr


def test_serve_runs_the_server_on_the_node_installed_for_it(tmp_path: Path, fake_npm: Path):
    result, _ = install(tmp_path, fake_npm, ">=22.5.0")
    assert result.returncode == 0, result.stderr
    env = env_for(tmp_path, fake_npm)
    # The fake server records `node --version` (the first `node` on its PATH) and exits.
    served = run_entrypoint(env, "serve", timeout=60)
    assert wait_for_file(tmp_path / "node-version.txt", 5) == "v22.23.3\n", served.stderr


def test_serve_without_a_node_of_its_own_runs_the_images_node(tmp_path: Path, fake_npm: Path):
    result, _ = install(tmp_path, fake_npm, None)
    assert result.returncode == 0, result.stderr
    run_entrypoint(env_for(tmp_path, fake_npm), "serve", timeout=60)
    assert wait_for_file(tmp_path / "node-version.txt", 5) == running_node() + "\n"


def test_native_modules_are_rebuilt_on_the_new_node_against_its_headers(tmp_path: Path, fake_npm: Path):
    result, calls = install(tmp_path, fake_npm, ">=22.5.0", FAKE_NATIVE="1")
    assert result.returncode == 0, result.stderr
    node_dir = tmp_path / "home" / ENV_DIR / ".node"
    assert calls[-1] == f"rebuild-env v22.23.3 {node_dir}"
    assert (node_dir / "include" / "node" / "common.gypi").is_file()
    assert "Rebuilding native modules of @fake/mcp@1.0.0 for Node 22.23.3" in result.stderr


@pytest.mark.parametrize("engines", [">=99", "^23", "^16"])
def test_engines_no_lts_node_satisfies_fails_naming_the_range_and_leaves_nothing(
    tmp_path: Path, fake_npm: Path, engines: str
):
    result, calls = install(tmp_path, fake_npm, engines)
    assert result.returncode == 1
    assert (
        f"Error: install of {PACKAGE} failed: it needs Node {engines} (engines.node), which no Node.js LTS release"
        " satisfies" in result.stderr
    )
    assert not any(call.startswith("pack") for call in calls)
    assert not (tmp_path / "home" / ENV_DIR).exists()


def test_an_invalid_engines_range_fails_the_install_clearly(tmp_path: Path, fake_npm: Path):
    result, _ = install(tmp_path, fake_npm, "not a range!")
    assert result.returncode == 1
    assert 'engines.node "not a range!" is not a semver range' in result.stderr
    assert "its engines.node could not be checked" in result.stderr
    assert not (tmp_path / "home" / ENV_DIR).exists()


def test_a_failed_node_download_fails_the_install_and_leaves_nothing(tmp_path: Path, fake_npm: Path):
    result, _ = install(tmp_path, fake_npm, ">=22.5.0", FAKE_PACK_FAILS="1")
    assert result.returncode == 1
    assert f"Error: install of {PACKAGE} failed: downloading node-linux-" in result.stderr
    assert not (tmp_path / "home" / ENV_DIR).exists()


def test_a_failed_rebuild_for_the_new_node_fails_the_install_and_leaves_nothing(tmp_path: Path, fake_npm: Path):
    result, _ = install(tmp_path, fake_npm, ">=22.5.0", FAKE_NATIVE="1", FAKE_REBUILD_FAILS="1")
    assert result.returncode == 1
    assert f"Error: install of {PACKAGE} failed: npm rebuild failed with exit code 1" in result.stderr
    assert not (tmp_path / "home" / ENV_DIR).exists()
