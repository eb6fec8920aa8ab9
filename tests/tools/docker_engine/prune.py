"""Keeping the image tier's cache bounded: what earlier runs left in the engine is removed between runs.

Each run pushes to a registry on a new loopback port, so the images it tagged for that registry are useless
to the next run; a stand-in replaced by a new recipe, or a tag rebuilt, leaves a dangling image; containers of
an interrupted run stay behind; BuildKit's cache grows with every changed build. `prune` removes all of these
and trims the build cache to a bound (`CATWALK_IMAGE_CACHE_KEEP`, default `KEEP_DEFAULT`), least recently used
first, so the cache stays near what one run needs. Data roots of another storage driver (an engine that once
ran on vfs here) are removed whole by `stale_data_roots`. Only an engine the tier started itself is pruned.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # engine.py imports this module
    from tests.tools.docker_engine.engine import Engine

KEEP_DEFAULT = "8GB"
_SIZE = re.compile(r"^\d+(\.\d+)?\s*(B|kB|KB|MB|GB|TB)$")


def keep_storage() -> str:
    """The build cache bound; a value docker cannot read is refused here, naming the variable."""
    value = os.environ.get("CATWALK_IMAGE_CACHE_KEEP", KEEP_DEFAULT).strip()
    if not _SIZE.match(value):
        raise ValueError(f"CATWALK_IMAGE_CACHE_KEEP must be a size such as 8GB or 500MB, got {value!r}")
    return value


def foreign_registry_tags(refs: Iterable[str], registry: str) -> list[str]:
    """Tags for a loopback registry other than the current one (an earlier run's, gone with it)."""
    return sorted(
        ref
        for ref in refs
        if ref.startswith(("127.0.0.1:", "localhost:")) and not ref.startswith(f"{registry}/") and "<none>" not in ref
    )


def stale_data_roots(cache: Path, current: Path) -> list[Path]:
    """The engine data roots in the cache other than the current one."""
    return sorted(p for p in cache.glob("engine*") if p.is_dir() and p.resolve() != current.resolve())


def disk_usage(engine: Engine) -> str:
    """`docker system df` as one line: images, containers, build cache."""
    rows = engine.docker("system", "df", "--format", "{{.Type}} {{.Size}}", check=False, timeout=300).stdout
    return ", ".join(line.strip() for line in rows.splitlines() if line.strip()) or "unknown"


def prune(engine: Engine) -> list[str]:
    """Remove what earlier runs left (see the module docstring); returns what was done, one line each."""
    keep = keep_storage()
    before = disk_usage(engine)
    refs = engine.docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}", timeout=120).stdout.split()
    stale = foreign_registry_tags(refs, engine.registry)
    for start in range(0, len(stale), 50):
        engine.docker("image", "rm", *stale[start : start + 50], check=False, timeout=600)
    engine.docker("container", "prune", "--force", timeout=600)
    engine.docker("image", "prune", "--force", timeout=1200)
    engine.docker("builder", "prune", "--force", "--keep-storage", keep, timeout=1200)
    return [
        f"cache pruned ({len(stale)} tags of earlier registries, dangling images, build cache beyond {keep}): "
        f"{before} -> {disk_usage(engine)}"
    ]


def remove_stale_data_roots(cache: Path, current: Path) -> list[str]:
    """Remove the data roots `stale_data_roots` names; one line each, with the disk space it freed."""
    lines = []
    for root in stale_data_roots(cache, current):
        free = shutil.disk_usage(cache).free
        shutil.rmtree(root, ignore_errors=True)
        freed = (shutil.disk_usage(cache).free - free) / 1e9
        lines.append(f"removed the data root of another storage driver, {root} ({freed:.1f} GB freed)")
    return lines
