"""A stack that leaves `appPrefix` to the default keeps the app names its state holds.

The default name carries the stack's random id; a stack deployed before that default (apps named
`catwalk-<stack>-<server>`, no stack id in its state) must not have its apps, URLs and volumes replaced by the
first `up` of a newer catwalk. Custom-command servers on a prebuilt image keep it offline.
"""

from __future__ import annotations

from tests.program.test_stack_ownership import fly, stack_file  # noqa: F401  (fly: the emulator fixture)
from tests.tools.harness.state import StateFile
from tests.tools.stack_files import stack_harness

APP = "pulumi-python:dynamic/catwalk:FlyApp"


def test_a_stack_deployed_under_the_earlier_default_names_keeps_its_apps_and_urls(fly, tmp_path):  # noqa: F811
    config, state = tmp_path / "Pulumi.dev.yaml", tmp_path / "state.json"
    harness = stack_harness(fly, config, state, stack="dev")
    stack_file(config, appPrefix="catwalk-dev")  # the names the earlier default gave the stack `dev`
    first = harness("up")
    assert first.ok, first.error
    urls = {s: first.outputs[s]["url"] for s in ("tool", "other")}
    assert urls["tool"] == "https://catwalk-dev-tool.fly.dev/mcp"

    saved = StateFile(state).load("catwalk", "dev")  # as that catwalk left it: no stack id in the state
    saved.resources = [e for e in saved.resources if e.name != "stack-id"]
    StateFile(state).save(saved)
    stack_file(config)  # and no appPrefix in the stack file
    fly.clear_calls()

    preview = harness("preview")
    assert preview.ok, preview.error
    assert not [o for o in preview.operations if o["type"] == APP and o["op"] in ("replace", "delete", "create")]
    upgraded = harness("up")
    assert upgraded.ok, upgraded.error
    assert {s: upgraded.outputs[s]["url"] for s in ("tool", "other")} == urls
    assert set(fly.emulator.state.apps) == {"catwalk-dev-tool", "catwalk-dev-other"}
    app_deletes = [c for c in fly.mutating_calls() if c["method"] == "DELETE" and c["path"].count("/") == 3]
    assert app_deletes == [], "no app was deleted"
    again = harness("up")
    assert {o["op"] for o in again.operations} == {"same"}


def test_a_new_stack_without_app_prefix_still_gets_the_default_with_its_stack_id(fly, tmp_path):  # noqa: F811
    config, state = tmp_path / "Pulumi.dev.yaml", tmp_path / "state.json"
    result = stack_harness(fly, stack_file(config), state, stack="dev")("up")
    assert result.ok, result.error
    [stack_id] = [
        e.outputs["result"] for e in StateFile(state).load("catwalk", "dev").resources if e.name == "stack-id"
    ]
    assert result.outputs["tool"]["app"] == f"catwalk-dev-{stack_id}-tool"
    assert result.outputs["tool"]["url"] == f"https://catwalk-dev-{stack_id}-tool.fly.dev/mcp"
