"""End to end: a server that needs a project file starts with it given through `files`.

`@pandacss/mcp` exits unless a `panda.config.*` is in its working directory. The stack gives it one through
Fly's machine `files`; the Fly emulator writes it into the machine's working directory before the entrypoint
starts, as Fly does.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from components.mcpcheck import check
from tests.tools.fly_emulator.fixture import running_emulator
from tests.tools.stack_files import stack_harness, write_test_stack

pytestmark = [pytest.mark.network, pytest.mark.slow]
PANDA_CONFIG = """\
export default {
  preflight: true,
  include: ["./src/**/*.{ts,tsx}"],
  outdir: "styled-system",
  theme: { extend: { tokens: { colors: { brand: { value: "#ff4f00" } } } } },
}
"""
SERVER = {
    "name": "panda",
    "package": "@pandacss/mcp",
    "version": "1.12.1",
    "files": [{"path": "panda.config.ts", "content": PANDA_CONFIG}],
}


def test_pandacss_mcp_starts_with_its_config_from_files_and_lists_its_tools(tmp_path):
    with running_emulator(run_machines=True, workdir=tmp_path / "machines") as emulator:
        config = write_test_stack(tmp_path / "Pulumi.test.yaml", servers=[SERVER])
        up = stack_harness(emulator, config, tmp_path / "state.json", timeout=900)("up", show_secrets=True)
        assert up.ok, up.error
        [machine] = [m for m in emulator.machines() if m["app"] == "catwalk-test-panda"]
        [written] = emulator.emulator.state.machines[machine["id"]].config["files"]
        assert written["guest_path"] == "/home/app/panda.config.ts"

        answer = check(
            up.outputs["panda"]["local_url"],
            token=up.outputs["panda"]["token"],
            timeout=300,
            wait_until_up=True,
            poll_interval=1,
        )
        assert answer.ok, f"{answer.error}; log: {Path(machine['process']['log']).read_text()[-2000:]}"
        assert answer.tools, "the server listed no tools"
        assert any("token" in tool for tool in answer.tools), answer.tools
