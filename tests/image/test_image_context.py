"""The unified image's tag is a hash of deploy/: what changes it, what does not, and what gets built."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from components import safety
from components.image import ContextError, context_hash, stage_context, tag_for
from components.image.context import is_excluded

REPO_DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def make_context(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "Dockerfile").write_text("FROM python:3.12-slim\nCOPY entrypoint.sh gateway.py /app/\n")
    (root / "entrypoint.sh").write_text("#!/bin/sh\nexec python3 /app/gateway.py\n")
    (root / "entrypoint.sh").chmod(0o755)
    (root / "gateway.py").write_text("print('gateway')\n")
    (root / "gateway.py").chmod(0o644)
    return root


@pytest.fixture
def ctx(tmp_path: Path) -> Path:
    return make_context(tmp_path / "deploy")


def test_hash_is_a_stable_sha256_and_the_same_for_a_copy_elsewhere(ctx: Path, tmp_path: Path):
    first = context_hash(ctx)
    assert len(first) == 64 and int(first, 16) >= 0
    assert context_hash(ctx) == first
    copy = tmp_path / "elsewhere" / "deploy"
    shutil.copytree(ctx, copy)
    assert context_hash(copy) == first


@pytest.mark.parametrize(
    "junk",
    [
        ".git/HEAD",
        ".git/objects/ab/cdef",
        ".DS_Store",
        "Thumbs.db",
        ".entrypoint.sh.swp",
        "entrypoint.sh~",
        ".#gateway.py",
        "#gateway.py#",
        "gateway.py.orig",
        ".idea/workspace.xml",
        ".vscode/settings.json",
        "__pycache__/gateway.cpython-312.pyc",
        "gateway.pyc",
        ".pytest_cache/v/cache/lastfailed",
        ".ruff_cache/0.6/x",
        "node_modules/left-pad/index.js",
        "tests/test_entrypoint.py",
        "test/fixture.json",
        "test_gateway.py",
        "gateway_test.py",
        "test_entrypoint.sh",
    ],
)
def test_vcs_editor_os_cache_and_test_files_do_not_change_the_hash(ctx: Path, junk: str):
    before = context_hash(ctx)
    path = ctx / junk
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("anything\n")
    assert context_hash(ctx) == before, f"{junk} changed the hash"


def test_touching_without_changing_content_or_permissions_keeps_the_hash(ctx: Path):
    before = context_hash(ctx)
    later = time.time() + 3600
    os.utime(ctx / "entrypoint.sh", (later, later))
    (ctx / "gateway.py").chmod(0o600)  # only the executable bit counts, as in git
    assert context_hash(ctx) == before


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(
            lambda c: (c / "entrypoint.sh").write_text("#!/bin/sh\nexec python3 -u /app/gateway.py\n"),
            id="entrypoint-content",
        ),
        pytest.param(lambda c: (c / "Dockerfile").write_text("FROM python:3.13-slim\n"), id="dockerfile"),
        pytest.param(lambda c: (c / "entrypoint.sh").chmod(0o644), id="entrypoint-loses-exec-bit"),
        pytest.param(lambda c: (c / "gateway.py").rename(c / "proxy.py"), id="rename"),
        pytest.param(lambda c: (c / "extra.conf").write_text("x=1\n"), id="new-file"),
        pytest.param(lambda c: (c / "gateway.py").unlink(), id="deleted-file"),
        pytest.param(lambda c: (c / ".dockerignore").write_text("*.md\n"), id="dockerignore"),
        pytest.param(lambda c: (c / "lib").mkdir() or (c / "lib" / "util.sh").write_text(":\n"), id="subdirectory"),
        pytest.param(lambda c: (c / "run").symlink_to("entrypoint.sh"), id="new-symlink"),
        pytest.param(lambda c: (c / "gateway.py").write_text("print('gateway')\r\n"), id="line-endings"),
    ],
)
def test_any_change_to_what_is_built_changes_the_hash(ctx: Path, change):
    before = context_hash(ctx)
    change(ctx)
    assert context_hash(ctx) != before


def test_moving_a_symlink_target_changes_the_hash(ctx: Path):
    (ctx / "run").symlink_to("entrypoint.sh")
    before = context_hash(ctx)
    (ctx / "run").unlink()
    (ctx / "run").symlink_to("gateway.py")
    assert context_hash(ctx) != before


def test_a_missing_context_or_dockerfile_is_refused_with_the_path(tmp_path: Path):
    with pytest.raises(ContextError, match="is not a directory"):
        context_hash(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ContextError, match="has no Dockerfile"):
        context_hash(tmp_path / "empty")


def test_staged_copy_holds_exactly_the_hashed_files_with_their_exec_bits(ctx: Path, tmp_path: Path):
    for junk in (".git/config", "tests/test_x.py", ".DS_Store", "__pycache__/a.pyc"):
        (ctx / junk).parent.mkdir(parents=True, exist_ok=True)
        (ctx / junk).write_text("junk\n")
    (ctx / "lib").mkdir()
    (ctx / "lib" / "helper.sh").write_text(":\n")
    (ctx / "run").symlink_to("entrypoint.sh")
    target = tmp_path / "staged"
    target.mkdir()
    staged_hash = stage_context(ctx, target)
    assert staged_hash == context_hash(ctx)
    files = sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if not p.is_dir() or p.is_symlink())
    assert files == ["Dockerfile", "entrypoint.sh", "gateway.py", "lib/helper.sh", "run"]
    assert os.access(target / "entrypoint.sh", os.X_OK)
    assert not os.access(target / "gateway.py", os.X_OK)
    assert os.readlink(target / "run") == "entrypoint.sh"


def test_tag_is_a_short_valid_registry_tag_of_the_hash(ctx: Path):
    digest = context_hash(ctx)
    tag = tag_for(digest)
    assert tag == "ctx-" + digest[:16]
    safety.check_image_ref(f"registry.fly.io/catwalk-dev:{tag}")
    with pytest.raises(ValueError, match="not a sha256"):
        tag_for("not-a-hash")


@pytest.mark.parametrize(
    ("path", "is_dir", "excluded"),
    [
        ("entrypoint.sh", False, False),
        ("lib/testing.sh", False, False),  # "test" only as a whole directory name or a test_/_test file
        ("contest.py", False, False),
        ("tests", True, True),
        ("lib/.git", True, True),
        ("lib/tests/x.sh", False, True),
    ],
)
def test_exclusion_rules_match_whole_names_only(path: str, is_dir: bool, excluded: bool):
    assert is_excluded(path, is_dir=is_dir) is excluded


@pytest.mark.skipif(not (REPO_DEPLOY / "Dockerfile").is_file(), reason="deploy/Dockerfile not in this checkout")
def test_the_repositorys_deploy_directory_hashes():
    assert len(context_hash(REPO_DEPLOY)) == 64
