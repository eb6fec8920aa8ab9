"""Containers of the images under test: started detached, found by id, always removed."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from tests.tools.docker_engine.engine import Engine, free_port


@dataclass
class Container:
    engine: Engine
    id: str
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def logs(self) -> str:
        return self.engine.docker("logs", self.id, check=False, timeout=60).stdout

    def uids(self) -> set[int]:
        """The user id of every process in the container, as the host sees them."""
        rows = self.engine.docker("top", self.id, "-eo", "pid,uid,args").stdout.splitlines()[1:]
        return {int(row.split(None, 2)[1]) for row in rows if row.strip()}

    def inspect(self) -> dict:
        return json.loads(self.engine.docker("inspect", self.id).stdout)[0]


@contextlib.contextmanager
def running(
    engine: Engine,
    image: str,
    *,
    env: Mapping[str, str] | None = None,
    network: str = "host",
    args: Sequence[str] = (),
    options: Sequence[str] = (),
) -> Iterator[Container]:
    """`docker run -d` on the host network (or none) with the server listening on a free loopback port."""
    port = free_port()
    argv = ["run", "-d", "--network", network, *options]
    for key, value in {"PORT": str(port), "MCP_HOST": "loopback", **(env or {})}.items():
        argv += ["--env", f"{key}={value}"]
    cid = engine.docker(*argv, image, *args).stdout.strip().splitlines()[-1]
    try:
        yield Container(engine, cid, port)
    finally:
        engine.docker("rm", "-f", cid, check=False, timeout=120)
