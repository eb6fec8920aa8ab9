"""A Docker config directory of our own for one build, so `docker login` never writes the user's.

`docker login` stores the registry password (here the Fly token) in `$DOCKER_CONFIG/config.json`, in
plain base64 without a credential helper. Pointing `DOCKER_CONFIG` at a private temporary directory
keeps the token out of `~/.docker/config.json`; the directory is removed once the push is done, whether
it succeeded or not. The user's CLI plugins (buildx), builder instances and contexts stay reachable
through links, and the current context carries over, so the build runs where it would have.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

SHARED = ("cli-plugins", "buildx", "contexts")


def user_config_dir() -> Path:
    return Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")


@contextlib.contextmanager
def temporary_docker_config() -> Iterator[str]:
    """Yield a fresh DOCKER_CONFIG directory (mode 0700) holding no credentials; removed on exit."""
    user = user_config_dir()
    with tempfile.TemporaryDirectory(prefix="catwalk-docker-") as tmp:
        os.chmod(tmp, 0o700)
        for name in SHARED:
            if (user / name).exists():
                os.symlink(user / name, Path(tmp, name))
        config: dict[str, str] = {}
        with contextlib.suppress(OSError, ValueError, AttributeError):
            current = json.loads((user / "config.json").read_text()).get("currentContext")
            if isinstance(current, str) and current:
                config["currentContext"] = current
        Path(tmp, "config.json").write_text(json.dumps(config))
        yield tmp
