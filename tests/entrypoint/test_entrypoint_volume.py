"""A machine with a volume: the entrypoint, started as root, hands the root-owned mount point to the image's
user and runs as that user; started as a user who cannot write the volume, it stops and says so.

Needs root (to own the volume as Fly does and to switch users); skipped otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.tools.entrypoint_env import ENTRYPOINT

NOBODY = 65534
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: Fly's volumes are owned by root")


def run(env: dict[str, str], *argv: str, user: int | None = None) -> subprocess.CompletedProcess:
    prefix = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"] if user is not None else []
    base = {"PATH": os.environ["PATH"]}
    return subprocess.run(
        [*prefix, "sh", str(ENTRYPOINT), *argv], env={**base, **env}, capture_output=True, text=True, timeout=30
    )


@pytest.fixture
def volume():
    """A mount point as Fly leaves it: owned by root, mode 0755, on a path every user can reach."""
    parent = Path(tempfile.mkdtemp(prefix="catwalk-volume-"))
    parent.chmod(0o755)
    mount = parent / "data"
    mount.mkdir(mode=0o755)
    os.chown(mount, 0, 0)
    yield mount
    shutil.rmtree(parent)


def test_started_as_root_it_hands_the_mount_point_to_the_user_and_drops_to_it(volume):
    # An unknown action fails after the switch, so the run stops there: what matters is who got that far.
    done = run({"MCP_VOLUME_PATH": str(volume), "MCP_RUN_AS": f"{NOBODY}:{NOBODY}"}, "whoami-check")
    assert done.returncode == 1 and "unknown action" in done.stderr, done.stderr
    assert (volume.stat().st_uid, volume.stat().st_gid) == (NOBODY, NOBODY)
    assert "not writable" not in done.stderr, "the re-run as the user could write the volume"


def test_a_user_who_cannot_write_the_volume_is_stopped_with_the_reason(volume):
    done = run({"MCP_VOLUME_PATH": str(volume), "MCP_RUN_AS": f"{NOBODY}:{NOBODY}"}, "run", user=NOBODY)
    assert done.returncode == 1
    assert f"the volume at MCP_VOLUME_PATH={volume} is not writable by uid {NOBODY}" in done.stderr
    assert volume.stat().st_uid == 0


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MCP_VOLUME_PATH": "data"}, "must be an absolute path"),
        ({"MCP_VOLUME_PATH": "/data", "MCP_RUN_AS": "app"}, "must be UID:GID"),
        ({"MCP_VOLUME_PATH": "/data", "MCP_RUN_AS": "1:x"}, "must be UID:GID"),
    ],
)
def test_bad_volume_settings_are_refused_before_anything_changes(env, message):
    done = run(env, "run")
    assert done.returncode == 1 and message in done.stderr


def test_without_a_volume_nothing_runs_as_another_user(tmp_path):
    done = run({"MCP_RUN_AS": f"{NOBODY}:{NOBODY}"}, "whoami-check")
    assert done.returncode == 1 and "unknown action" in done.stderr
