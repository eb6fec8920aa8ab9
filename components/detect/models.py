"""What detection returns: the runtime, the pinned package, the launch argv, and why."""

from __future__ import annotations

import json
import shlex
from datetime import datetime, timedelta, timezone
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from components.detect import browser as browser_mod
from components.detect.errors import DetectError

Runtime = Literal["npm", "python", "custom"]


def utc_ceil(moment: datetime) -> datetime:
    """Round up to the whole second in UTC.

    ``uv --exclude-newer T`` keeps files uploaded *before* T: truncating a release's upload time would drop
    that very release, so the env carries the upload time rounded up.
    """
    moment = moment.astimezone(timezone.utc) if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    whole = moment.replace(microsecond=0)
    return whole if whole == moment else whole + timedelta(seconds=1)


def iso_utc(moment: datetime) -> str:
    return utc_ceil(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None) -> datetime | None:
    """ISO-8601 from PyPI (``…Z``) or npm (``…+00:00``); naive times are UTC."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


class RuntimeSpec(BaseModel):
    """Exactly what a machine must run for one server, as decided from registry facts.

    ``env()`` is the contract with ``deploy/entrypoint.sh``: MCP_RUNTIME, MCP_PACKAGE (pinned),
    MCP_COMMAND (custom), MCP_ARGS (when args are given), MCP_LAUNCH, MCP_RESOLVED_AT and MCP_NEEDS_BROWSER
    (``chromium`` when the server drives a browser: the entrypoint then refuses to install without one).
    """

    model_config = ConfigDict(frozen=True)

    spec: str
    runtime: Runtime
    registry: str | None = None
    package: str | None = None
    version: str | None = None
    pinned: str | None = None
    launch: list[str] = Field(default_factory=list)
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    requires_python: str | None = None
    requires_node: str | None = None
    resolved_at: datetime | None = None
    browser: Literal["chromium"] | None = None  # the browser the server drives (components.detect.browser)
    # A bare name published on both PyPI and npm: the registry was chosen by signals any publisher controls,
    # so a stack asks for `npm:`/`pypi:` instead (components.resolution).
    both_registries: bool = False
    evidence: list[str] = Field(default_factory=list)

    def env(self) -> dict[str, str]:
        env = {"MCP_RUNTIME": self.runtime}
        if self.runtime == "custom":
            env["MCP_COMMAND"] = self.command or ""
        else:
            env["MCP_PACKAGE"] = self.pinned or self.package or ""
            env["MCP_LAUNCH"] = json.dumps(self.launch)
        if self.args:
            env["MCP_ARGS"] = json.dumps(self.args)
        if self.resolved_at is not None:
            env["MCP_RESOLVED_AT"] = iso_utc(self.resolved_at)
        if self.browser:
            env["MCP_NEEDS_BROWSER"] = self.browser
        return env

    @property
    def browser_shown(self) -> str | None:
        """How detection results show the browser need: what the baked image installs for it."""
        return browser_mod.SHOWN if self.browser else None

    def summary(self) -> dict:
        """The JSON object of ``detect --json``; ``browser`` only for a server that drives one."""
        summary = {
            "spec": self.spec,
            "runtime": self.runtime,
            "package": self.pinned or self.package or self.command,
            "version": self.version,
            "launch": self.launch,
            "env": self.env(),
            "evidence": "; ".join(self.evidence),
        }
        return {**summary, "browser": self.browser_shown} if self.browser else summary


def custom_spec(command: str | list[str], args: list[str] | None = None) -> RuntimeSpec:
    """A custom command: validated into argv now (no shell will ever evaluate it), carried as text."""
    from components import safety

    try:
        argv = safety.parse_command(command)
    except ValueError as exc:
        raise DetectError(f"command {exc}") from None
    text = command if isinstance(command, str) else shlex.join(argv)
    return RuntimeSpec(
        spec=text,
        runtime="custom",
        command=text,
        launch=argv,
        args=list(args or []),
        evidence=["a custom command runs as given, without a shell"],
    )
