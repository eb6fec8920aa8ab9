"""The test stack (`Pulumi.test.yaml`) copied and edited for a test, and the harness bound to it and the emulator.

Tests and benchmarks that deploy a whole stack against the Fly emulator share this setup: a stack file of
their own (other servers, or without the prebuilt image so `up` builds), one state file, and `FLY_API_URL`
and `FLY_API_TOKEN` pointing at the emulator with the client's mutation pacing off.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from tests.tools.fly_emulator.fixture import EmulatorHandle
from tests.tools.harness import REPO_ROOT, Result, run_subprocess

TEST_STACK = REPO_ROOT / "Pulumi.test.yaml"


def emulator_env(emulator: EmulatorHandle) -> dict[str, str]:
    """The environment that sends the program's Fly calls to ``emulator``, unpaced."""
    return {"FLY_API_URL": emulator.base_url, "FLY_API_TOKEN": emulator.token, "CATWALK_FLY_RATE": "off"}


def write_test_stack(path: Path, *, servers: list[dict[str, Any]] | None = None, without: Iterable[str] = ()) -> Path:
    """`Pulumi.test.yaml` written to ``path``: with ``servers`` in place of its own, without the keys ``without``."""
    doc = yaml.safe_load(TEST_STACK.read_text())
    if servers is not None:
        doc["config"]["catwalk:servers"] = servers
    for key in without:
        del doc["config"][key]
    path.write_text(yaml.safe_dump(doc))
    return path


def edit_servers(config: Path, edit: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]) -> None:
    """Replace the servers of the stack file ``config`` by what ``edit`` makes of them."""
    doc = yaml.safe_load(config.read_text())
    doc["config"]["catwalk:servers"] = edit(doc["config"]["catwalk:servers"])
    config.write_text(yaml.safe_dump(doc))


def stack_harness(
    emulator: EmulatorHandle,
    config: Path,
    state: Path,
    *,
    stack: str = "test",
    env: Mapping[str, str] | None = None,
    **defaults: Any,
) -> Callable[..., Result]:
    """``harness(command, **kwargs)``: `run_subprocess` of the repository's program on one stack file and state,
    against ``emulator`` (with ``env`` added); a keyword given to a call wins over ``defaults``."""
    run_env = {**emulator_env(emulator), **(env or {})}

    def harness(command: str, **kwargs: Any) -> Result:
        options: dict[str, Any] = {"project_dir": REPO_ROOT, **defaults, **kwargs}
        return run_subprocess(command, stack, config_file=config, state=state, env=run_env, **options)

    return harness


def per_file_harness(emulator: EmulatorHandle, state: Path, *, stack: str, **defaults: Any) -> Callable[..., Result]:
    """``harness(command, config, **kwargs)``: as `stack_harness`, for a test that gives each run its stack file."""

    def harness(command: str, config: Path, **kwargs: Any) -> Result:
        return stack_harness(emulator, config, state, stack=stack, **defaults)(command, **kwargs)

    return harness
