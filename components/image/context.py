"""The build context of the unified image, and the content hash that names it.

The image tag is a hash of what goes into the build, so an unchanged `deploy/` means an unchanged tag and
nothing to do on `up`. Files that never belong in an image (VCS metadata, editor and OS droppings, caches,
tests) are left out of the hash *and* out of the build: the provider builds from a staged copy holding
exactly the hashed files, so the tag can never name an image with content the hash did not see.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from components.errors import CatwalkError

# Directories skipped wherever they appear in the tree.
EXCLUDED_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",  # version control
        ".idea",
        ".vscode",
        ".vs",
        ".fleet",  # editors
        "__pycache__",
        ".pytest_cache",
        ".ruff_cache",
        ".mypy_cache",
        ".tox",
        ".nox",
        ".cache",  # caches
        "node_modules",
        ".venv",
        "venv",  # local installs: the image installs its own
        "tests",
        "test",
        "__tests__",  # tests do not ship
    }
)
# File-name patterns skipped wherever they appear.
EXCLUDED_FILES = (
    ".DS_Store",
    "._*",
    "Thumbs.db",
    "desktop.ini",  # OS
    "*.swp",
    "*.swo",
    "*.swx",
    "*~",
    ".#*",
    "#*#",
    "*.orig",
    "*.rej",
    "*.bak",  # editors, merges
    "*.pyc",
    "*.pyo",
    ".coverage",
    ".coverage.*",  # caches
    "test_*.py",
    "*_test.py",
    "test_*.sh",
    "*_test.sh",
    "*.bats",  # tests
)

HASH_PREFIX = "ctx-"
TAG_HEX = 16


class ContextError(CatwalkError, ValueError):
    """The build context cannot be used (missing, no Dockerfile, unreadable file)."""


@dataclass(frozen=True)
class ContextFile:
    """One file of the context as hashed: its POSIX path relative to the root and what identifies it."""

    path: str
    kind: str  # "file" or "symlink"
    executable: bool
    digest: str  # sha256 of the content, or of the link target


def is_excluded(relpath: str | PurePosixPath, *, is_dir: bool = False) -> bool:
    """Whether a path (relative, POSIX) is left out of the hash and the build."""
    parts = PurePosixPath(relpath).parts
    if any(part in EXCLUDED_DIRS for part in (parts if is_dir else parts[:-1])):
        return True
    return not is_dir and any(fnmatch.fnmatchcase(parts[-1], pattern) for pattern in EXCLUDED_FILES)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def iter_context(root: str | os.PathLike[str]) -> Iterator[ContextFile]:
    """The files of the context in a stable order (sorted POSIX paths), exclusions applied.

    Only the executable bit of a file's mode counts: git keeps nothing else, so a checkout with another
    umask hashes the same. Sockets, FIFOs and device files are skipped; symlinks are hashed by target.
    """
    root = Path(root)
    found: list[ContextFile] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        rel_dir = base.relative_to(root).as_posix()
        kept_dirs = []
        for name in dirnames:
            rel = PurePosixPath(rel_dir, name) if rel_dir != "." else PurePosixPath(name)
            if is_excluded(rel, is_dir=True):
                continue
            if (base / name).is_symlink():
                filenames.append(name)  # a symlink to a directory is kept as a link, never followed
            else:
                kept_dirs.append(name)
        dirnames[:] = sorted(kept_dirs)
        for name in filenames:
            rel = PurePosixPath(rel_dir, name) if rel_dir != "." else PurePosixPath(name)
            if is_excluded(rel):
                continue
            full = base / name
            try:
                info = full.lstat()
                if stat.S_ISLNK(info.st_mode):
                    target = os.readlink(full)
                    digest = hashlib.sha256(target.encode("utf-8", "surrogateescape")).hexdigest()
                    found.append(ContextFile(rel.as_posix(), "symlink", False, digest))
                elif stat.S_ISREG(info.st_mode):
                    executable = bool(info.st_mode & stat.S_IXUSR)
                    found.append(ContextFile(rel.as_posix(), "file", executable, _sha256_file(full)))
            except OSError as exc:
                raise ContextError(f"cannot read {full} of the build context: {exc.strerror or exc}") from None
    found.sort(key=lambda f: f.path)
    yield from found


def _check_root(root: Path) -> None:
    if not root.is_dir():
        raise ContextError(f"build context {root} is not a directory (expected the repository's deploy/)")
    if not (root / "Dockerfile").is_file():
        raise ContextError(f"build context {root} has no Dockerfile")


def context_hash(path: str | os.PathLike[str]) -> str:
    """The sha256 (hex) of the context's hashed files: paths, kinds, executable bits and contents."""
    root = Path(path)
    _check_root(root)
    digest = hashlib.sha256(b"catwalk-context-v1\n")
    for entry in iter_context(root):
        line = f"{entry.kind}\0{entry.path}\0{'x' if entry.executable else '-'}\0{entry.digest}\n"
        digest.update(line.encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def tag_for(content_hash: str, prefix: str = HASH_PREFIX) -> str:
    """The registry tag for a content hash: short enough to read, long enough (64 bits) not to collide."""
    if len(content_hash) != 64 or any(c not in "0123456789abcdef" for c in content_hash):
        raise ValueError(f"{content_hash!r} is not a sha256 hex digest")
    return f"{prefix}{content_hash[:TAG_HEX]}"


def stage_context(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> str:
    """Copy exactly the hashed files of `source` into the empty directory `target`; return their hash.

    The build runs on this copy, so what is pushed under a tag is what that tag's hash covered, even if
    `deploy/` holds excluded files (a `.git`, tests) or changes while the build runs.
    """
    source, target = Path(source), Path(target)
    _check_root(source)
    for entry in iter_context(source):
        src, dst = source / entry.path, target / entry.path
        dst.parent.mkdir(parents=True, exist_ok=True)
        if entry.kind == "symlink":
            os.symlink(os.readlink(src), dst)
        else:
            shutil.copyfile(src, dst)
            os.chmod(dst, 0o755 if entry.executable else 0o644)
    return context_hash(target)
