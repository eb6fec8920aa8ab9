"""The gateway's own check of the token (started by hand, without the entrypoint): fail closed, read the
hand-over descriptor once and close it."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from catwalk_runtime.errors import UsageError
from catwalk_runtime.token_delivery import read_token
from tests.tools.entrypoint_env import free_port


def test_without_a_token_or_the_opt_out_the_gateway_itself_refuses_before_listening() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_")}
    port = free_port()
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "catwalk_runtime.serve", "--runtime", "custom", "--port", str(port),
         "--host", "127.0.0.1", "--", sys.executable, "-c", "import time; time.sleep(30)"],
        env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 1 and time.monotonic() - started < 2.0
    assert "MCP_AUTH_TOKEN is not set" in done.stderr and "MCP_AUTH=off" in done.stderr


def test_the_token_comes_from_the_handed_over_descriptor_which_is_then_closed() -> None:
    read_end, write_end = os.pipe()
    os.write(write_end, b"piped-token-value\n")
    os.close(write_end)
    assert read_token({"MCP_AUTH_FD": str(read_end)}) == "piped-token-value"
    with pytest.raises(OSError):
        os.fstat(read_end)


@pytest.mark.parametrize(
    ("environ", "fragment"),
    [
        ({}, "MCP_AUTH_TOKEN is not set"),
        ({"MCP_AUTH": "maybe"}, "expected `off`"),
        ({"MCP_AUTH_TOKEN": " "}, "empty"),
        ({"MCP_AUTH_TOKEN": "a\nb"}, "control characters"),
        ({"MCP_AUTH_FD": "1"}, "above 2"),
    ],
)
def test_a_missing_or_bad_token_is_refused_naming_it(environ: dict[str, str], fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment):
        read_token(environ)


def test_only_the_explicit_opt_out_serves_without_a_token() -> None:
    assert read_token({"MCP_AUTH": "off"}) is None
    assert read_token({"MCP_AUTH": "off", "MCP_AUTH_TOKEN": "t"}) == "t"
