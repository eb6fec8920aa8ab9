"""Pure provider logic: input checks, diffs and machine config rendering (no Fly call, no emulator)."""

from __future__ import annotations

import copy
import pickle

import pytest
from pulumi.dynamic import ConfigureRequest
from pulumi.dynamic.config import Config
from pulumi.output import Unknown

from components.providers.app import FlyAppProvider, foreign_machines
from components.providers.base import FlyProviderError, partial_diff, strip_engine_keys
from components.providers.ip import FlyIpProvider, ip_type
from components.providers.machine import FlyMachineProvider, rolling_batch, rolling_predecessor
from components.providers.machine_config import (
    MachineInputs,
    config_drift,
    inputs_from_machine,
    owned_view,
    render_config,
)
from components.providers.secrets import FlySecretsProvider

OWNER = "k3x9a2b1"  # the stack id every app of these tests carries

MACHINE = {
    "app": "catwalk-dev-memory",
    "stack": "dev",
    "server": "memory",
    "region": "iad",
    "index": 0,
    "image": "registry.fly.io/catwalk-dev-memory:deployment-1",
    "env": {"MCP_RUNTIME": "npm", "LOG_LEVEL": "info"},
}


def checked(provider, news, olds=None):
    return provider.check(olds or {}, {**news, "__provider": "pickled"})


def outputs_for(news: dict) -> dict:
    """What a create would have stored: the checked inputs plus computed outputs and `__provider`."""
    inp = MachineInputs.model_validate(news)
    desired = render_config(inp)
    return {
        **inp.model_dump(mode="json"),
        "machine_id": "m1",
        "name": inp.machine_name,
        "version": "v1",
        "instance_id": "v1",
        "state": "started",
        "private_ip": "fdaa::1",
        "config": owned_view(desired, desired),
        "__provider": "pickled",
    }


# -- rendering ---------------------------------------------------------------------------------------


def test_machine_config_serves_8080_on_443_with_tls_and_80_with_http():
    config = render_config(MachineInputs.model_validate(MACHINE))
    (service,) = config["services"]
    assert service["internal_port"] == 8080
    ports = {p["port"]: p for p in service["ports"]}
    assert ports[443]["handlers"] == ["tls", "http"]
    assert ports[80]["handlers"] == ["http"] and ports[80]["force_https"] is True
    assert (service["autostop"], service["autostart"], service["min_machines_running"]) == ("stop", True, 0)


def test_machine_config_checks_status_restarts_on_failure_and_marks_ownership():
    config = render_config(MachineInputs.model_validate({**MACHINE, "size": "performance-2x", "memory": 4096}))
    assert config["checks"]["status"]["path"] == "/status"
    assert config["checks"]["status"]["port"] == 8080 and config["checks"]["status"]["type"] == "http"
    assert config["restart"]["policy"] == "on-failure"
    assert config["guest"] == {"cpu_kind": "performance", "cpus": 2, "memory_mb": 4096}
    assert config["metadata"] == {
        "catwalk_stack": "dev",
        "catwalk_server": "memory",
        "catwalk_index": "0",
        "fly_platform_version": "v2",
        "fly_process_group": "app",
    }


def test_machine_name_is_unique_per_server_region_and_index():
    names = {
        MachineInputs.model_validate({**MACHINE, "region": r, "index": i}).machine_name
        for r in ("iad", "ams")
        for i in (0, 1)
    }
    assert len(names) == 4 and "memory-ams-1" in names


# -- check -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"region": "moon"}, "region", "not a Fly.io region"),
        ({"size": "huge-9x"}, "size", "not a Fly machine size"),
        ({"size": "shared-cpu-1x", "memory": 4096}, "memory", "does not fit size"),
        ({"env": {"GITHUB_TOKEN": "x"}}, "env", "looks like a credential"),
        ({"env": {"BAD-NAME": "x"}}, "env", "not a valid environment variable name"),
        ({"app": "Bad_App"}, "app", "not a Fly app name"),
        ({"image": "bad image;rm"}, "image", "not an image reference"),
        ({"autostop": "sometimes"}, "autostop", "'off', 'stop' or 'suspend'"),
        ({"colour": "red"}, "colour", "unknown property"),
    ],
)
def test_machine_check_names_the_field_and_the_problem(change, field, words):
    result = checked(FlyMachineProvider(), {**MACHINE, **change})
    assert result.failures, "bad input must fail the preview"
    (failure,) = result.failures
    assert failure.property.split(".")[0] == field
    assert words in failure.reason and failure.reason.startswith(field)


def test_machine_check_without_required_inputs_lists_each_missing_field():
    result = checked(FlyMachineProvider(), {"app": "catwalk-dev-memory"})
    missing = {f.property for f in result.failures}
    assert {"stack", "server", "region", "image"} <= missing


def test_machine_check_returns_normalized_inputs_without_the_provider_key():
    result = checked(FlyMachineProvider(), MACHINE)
    assert result.failures == []
    assert "__provider" not in result.inputs
    assert result.inputs["size"] == "shared-cpu-1x" and result.inputs["memory"] == 512


def test_check_during_preview_skips_unknown_inputs_but_reports_known_errors():
    news = {**MACHINE, "app": Unknown(), "image": Unknown()}
    assert checked(FlyMachineProvider(), news).failures == []
    bad = checked(FlyMachineProvider(), {**news, "region": "moon"})
    assert [f.property for f in bad.failures] == ["region"]


def test_secrets_check_errors_name_the_variable_but_never_show_its_value():
    value = "sk-live-0123456789abcdef"
    for values, name in (({"BAD-NAME": value}, "BAD-NAME"), ({"EMPTY": ""}, "EMPTY"), ({"N": 7}, "N")):
        result = checked(FlySecretsProvider(), {"app": "catwalk-dev-x", "values": values})
        assert result.failures, values
        text = " ".join(f"{f.property} {f.reason}" for f in result.failures)
        assert name in text and "values" in text
        assert value not in text


def test_app_and_ip_checks_reject_bad_names_and_types():
    assert [
        f.property for f in checked(FlyAppProvider(), {"name": "x--y", "stack": "dev", "owner": OWNER}).failures
    ] == ["name"]
    failures = checked(FlyIpProvider(), {"app": "catwalk-dev-x", "type": "v5"}).failures
    assert [f.property for f in failures] == ["type"]


# -- diff --------------------------------------------------------------------------------------------


def test_unchanged_machine_inputs_diff_to_no_change():
    news = checked(FlyMachineProvider(), MACHINE).inputs
    result = FlyMachineProvider().diff("m1", outputs_for(MACHINE), news)
    assert result.changes is False and result.replaces == []
    assert "machine_id" in result.stables and "region" in result.stables


@pytest.mark.parametrize(
    "change",
    [
        {"env": {"MCP_RUNTIME": "npm", "LOG_LEVEL": "debug"}},
        {"image": "registry.fly.io/catwalk-dev-memory:deployment-2"},
        {"size": "shared-cpu-2x"},
        {"memory": 1024},
        {"autostop": "suspend"},
        {"min_machines_running": 1},
        {"secrets_version": 3},
    ],
)
def test_env_image_size_service_and_secrets_changes_update_in_place(change):
    news = checked(FlyMachineProvider(), {**MACHINE, **change}).inputs
    result = FlyMachineProvider().diff("m1", outputs_for(MACHINE), news)
    assert result.changes is True
    assert result.replaces == []


def test_region_change_replaces_the_machine_and_says_so():
    news = checked(FlyMachineProvider(), {**MACHINE, "region": "ams"}).inputs
    result = FlyMachineProvider().diff("m1", outputs_for(MACHINE), news)
    assert result.changes is True and result.replaces == ["region"]
    assert result.delete_before_replace is False
    assert "region" not in result.stables


def test_unknown_input_in_preview_counts_as_a_change():
    news = {**checked(FlyMachineProvider(), MACHINE).inputs, "image": Unknown()}
    result = FlyMachineProvider().diff("m1", outputs_for(MACHINE), news)
    assert result.changes is True and result.replaces == []


def test_config_drift_outside_the_inputs_is_a_change():
    olds = outputs_for(MACHINE)
    olds["config"]["services"][0]["ports"][0]["port"] = 8443  # someone edited the machine by hand
    news = checked(FlyMachineProvider(), MACHINE).inputs
    result = FlyMachineProvider().diff("m1", olds, news)
    assert result.changes is True and result.replaces == []


def test_fly_added_defaults_and_boolean_autostop_are_not_drift():
    inp = MachineInputs.model_validate(MACHINE)
    live = copy.deepcopy(render_config(inp))
    live["init"] = {"exec": None}
    live["dns"] = {}
    live["auto_destroy"] = False
    live["services"][0]["autostop"] = True  # Fly answers "stop" as true
    live["services"][0]["concurrency"] = {"type": "connections", "hard_limit": 25}
    live["services"][0]["force_instance_key"] = None
    live["checks"]["status"]["kind"] = "informational"
    live["guest"]["kernel_args"] = []
    assert config_drift(live, inp) is False
    live["env"]["EXTRA"] = "1"
    assert config_drift(live, inp) is True


def test_inputs_read_back_from_a_live_machine_match_what_was_rendered():
    inp = MachineInputs.model_validate({**MACHINE, "region": "ams", "index": 2, "autostop": "off"})
    live = {"id": "m1", "region": "ams", "config": render_config(inp)}
    live["config"]["services"][0]["autostop"] = False
    found = inputs_from_machine(live, inp.app)
    assert MachineInputs.model_validate(found) == inp


def test_partial_diff_and_engine_key_stripping():
    olds = {"a": 1, "b": {"x": 1}, "__provider": "p", "__meta": "m"}
    assert strip_engine_keys(olds) == {"a": 1, "b": {"x": 1}}
    assert partial_diff(olds, {"a": 1, "b": {"x": 2}}, ["a", "b"]) == ["b"]
    assert partial_diff(olds, {"a": Unknown(), "b": {"x": 1}}, ["a", "b"]) == ["a"]


def _secrets_outputs(provider, values):
    salt = "00" * 16
    return provider._outputs(provider.inputs_model.model_validate({"app": "catwalk-dev-x", "values": values}), salt, 1)


def test_secrets_state_holds_names_version_and_digest_but_no_value():
    provider = FlySecretsProvider()
    outs = _secrets_outputs(provider, {"API_KEY": "hunter2-value", "OTHER": "second-value"})
    assert outs["names"] == ["API_KEY", "OTHER"] and outs["version"] == 1
    assert "hunter2-value" not in repr(outs) and "second-value" not in repr(outs)


@pytest.mark.parametrize(
    ("news", "changes"),
    [
        ({"API_KEY": "hunter2-value"}, False),
        ({"API_KEY": "hunter3-value"}, True),
        ({"API_KEY": "hunter2-value", "NEW": "v"}, True),
        ({}, True),
    ],
)
def test_secrets_diff_detects_a_changed_value_from_the_digest(news, changes):
    provider = FlySecretsProvider()
    olds = {**_secrets_outputs(provider, {"API_KEY": "hunter2-value"}), "__provider": "p"}
    result = provider.diff("catwalk-dev-x", olds, {"app": "catwalk-dev-x", "values": news})
    assert result.changes is changes and result.replaces == []


def test_secrets_diff_replaces_on_app_change():
    provider = FlySecretsProvider()
    olds = _secrets_outputs(provider, {"A": "1"})
    result = provider.diff("catwalk-dev-x", olds, {"app": "catwalk-dev-y", "values": {"A": "1"}})
    assert result.replaces == ["app"] and result.changes is True


def test_app_diff_replaces_on_rename_and_not_on_no_change():
    provider = FlyAppProvider()
    olds = {
        "name": "catwalk-dev-a",
        "org": "personal",
        "stack": "dev",
        "owner": OWNER,
        "app_id": "x",
        "__provider": "p",
    }
    same = provider.diff(
        "catwalk-dev-a", olds, {"name": "catwalk-dev-a", "org": "personal", "stack": "dev", "owner": OWNER}
    )
    assert same.changes is False and same.replaces == []
    renamed = provider.diff(
        "catwalk-dev-a", olds, {"name": "catwalk-dev-b", "org": "personal", "stack": "dev", "owner": OWNER}
    )
    assert renamed.changes is True and renamed.replaces == ["name"]


def test_app_delete_guard_lists_only_machines_of_other_stacks():
    machines = [
        {"id": "1", "name": "a", "config": {"metadata": {"catwalk_stack": "dev"}}},
        {"id": "2", "name": "b", "config": {"metadata": {"catwalk_stack": "prod"}}},
        {"id": "3", "name": "c", "config": {}},
        {"id": "4", "name": "d", "state": "destroyed", "config": {}},
    ]
    assert foreign_machines(machines, "dev") == ["b (2)", "c (3)"]


def test_ip_type_is_read_from_the_assignment():
    assert ip_type({"ip": "66.241.124.1", "shared": True}) == "shared_v4"
    assert ip_type({"ip": "2a09:8280:1::1"}) == "v6"
    assert ip_type({"ip": "fdaa:0:1::2", "network": {"name": ""}}) == "private_v6"


# -- token handling ----------------------------------------------------------------------------------


def test_configured_token_is_used_but_never_held_by_the_provider_or_pickled(monkeypatch):
    monkeypatch.delenv("FLY_API_TOKEN", raising=False)
    provider = FlyMachineProvider()
    provider.configure(ConfigureRequest(Config({"catwalk:flyApiToken": "fo1_secret_token"}, "catwalk")))
    assert provider.fly_token() == "fo1_secret_token"
    assert provider.client()._token() == "fo1_secret_token"
    assert vars(provider) == {}
    assert b"fo1_secret_token" not in pickle.dumps(provider)
    assert FlyMachineProvider().fly_token() is None  # another provider object was not configured


def test_ip_import_without_an_app_says_how_to_import():
    with pytest.raises(FlyProviderError, match=r"import it by '<app>/<address>'"):
        FlyIpProvider().read("66.241.124.1", {})


def test_requirements_allow_only_a_pulumi_whose_dynamic_read_can_return_inputs():
    """Every provider's read returns `ReadResult(..., inputs=...)`: pulumi 3.215 has no such argument (refresh
    fails with a TypeError) and 3.216 is the first that takes it and hands the inputs to the engine."""
    import inspect
    from pathlib import Path

    from packaging.requirements import Requirement
    from pulumi.dynamic import ReadResult

    root = Path(__file__).resolve().parents[2]
    lines = (root / "requirements.txt").read_text().splitlines()
    [pulumi] = [Requirement(line) for line in lines if line.strip().startswith("pulumi") and "random" not in line]
    assert not pulumi.specifier.contains("3.215.0") and pulumi.specifier.contains("3.216.0")
    assert "inputs" in inspect.signature(ReadResult.__init__).parameters


def test_a_machine_with_a_cmd_starts_the_entrypoint_with_it_and_reads_it_back():
    inp = MachineInputs.model_validate({**MACHINE, "cmd": ["authserver"]})
    config = render_config(inp)
    assert config["init"] == {"cmd": ["authserver"]}
    assert inputs_from_machine({"id": "m1", "region": "ams", "config": config}, inp.app)["cmd"] == ["authserver"]


def test_a_machine_without_a_cmd_has_no_init_and_reads_back_without_one():
    # Machines deployed before `cmd` existed must read back, and diff, exactly as they did.
    inp = MachineInputs.model_validate(MACHINE)
    config = render_config(inp)
    assert "init" not in config
    assert "cmd" not in inputs_from_machine({"id": "m1", "region": "ams", "config": config}, inp.app)
    before_cmd = {k: v for k, v in outputs_for(MACHINE).items() if k != "cmd"}
    assert FlyMachineProvider().diff("m1", before_cmd, checked(FlyMachineProvider(), MACHINE).inputs).changes is False
    with_cmd = checked(FlyMachineProvider(), {**MACHINE, "cmd": ["authserver"]}).inputs
    assert FlyMachineProvider().diff("m1", before_cmd, with_cmd).changes is True


@pytest.mark.parametrize("cmd", [["--help"], ["run; rm -rf /"], ["../x"]])
def test_a_cmd_with_shell_meaning_is_refused_naming_the_field(cmd):
    failures = FlyMachineProvider().check({}, {**MACHINE, "cmd": cmd}).failures
    assert [f.property for f in failures] == ["cmd[0]"] or [f.property for f in failures] == ["cmd"], failures


@pytest.mark.parametrize(
    ("total", "batch", "predecessors"),
    [
        (1, 1, [None]),
        (3, 1, [None, 0, 1]),
        (4, 1, [None, 0, 1, 2]),
        (5, 2, [None, None, 0, 1, 2]),
        (8, 2, [None, None, 0, 1, 2, 3, 4, 5]),
        (10, 3, [None, None, None, 0, 1, 2, 3, 4, 5, 6]),
    ],
)
def test_a_servers_machines_roll_one_at_a_time_up_to_four_then_a_quarter_at_once(total, batch, predecessors):
    assert rolling_batch(total) == batch
    assert [rolling_predecessor(i, total) for i in range(total)] == predecessors
