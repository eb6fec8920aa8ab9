"""The local engine harness, on a toy program whose dynamic providers write files in a temp dir:
the journal they keep is how these tests see which provider calls really happened."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.harness.toy_provider import read_journal
from tests.tools import harness
from tests.tools.harness.mocked import random_string
from tests.tools.harness.plan import decide

TOY = Path(__file__).resolve().parents[1] / "fixtures" / "harness" / "toy"
NOTE = "pulumi-python:dynamic/toy:Note"
FOLDER = "pulumi-python:dynamic/toy:Folder"
API_KEY = "sk-live-plaintext-4711"


class ToyStack:
    def __init__(self, tmp: Path):
        self.out = tmp / "out"
        self.out.mkdir()
        self.config = tmp / "Pulumi.test.yaml"
        self.state = tmp / "state.json"
        self.configure([{"key": "alpha", "content": "hello"}, {"key": "beta", "content": "world"}])

    def configure(self, notes: list[dict[str, Any]], **extra: Any) -> None:
        config = {"toy:dir": str(self.out), "toy:notes": notes, **extra}
        self.config.write_text(yaml.safe_dump({"config": config}))

    def run(self, command: str, **kwargs: Any) -> harness.Result:
        return harness.run(command, "test", project_dir=TOY, config_file=self.config, state=self.state, **kwargs)

    def cli(self, command: str, **kwargs: Any) -> harness.Result:
        return harness.run_subprocess(
            command, "test", project_dir=TOY, config_file=self.config, state=self.state, **kwargs
        )

    def journal(self) -> list[str]:
        return read_journal(self.out)

    def saved(self) -> list[dict[str, Any]]:
        return json.loads(self.state.read_text())["resources"]


@pytest.fixture
def toy(tmp_path: Path) -> ToyStack:
    return ToyStack(tmp_path)


def up_ok(toy: ToyStack, **kwargs: Any) -> harness.Result:
    result = toy.run("up", **kwargs)
    assert result.ok, result.error
    return result


def test_preview_plans_creates_without_calling_create(toy):
    result = toy.run("preview")
    assert result.ok, result.error
    assert {o["op"] for o in result.operations} == {"create"}
    assert result.op_of("alpha", NOTE) == "create"
    # as in `pulumi preview`: inputs are known, what only a create returns is not
    assert result.outputs["alpha"]["content"] == "hello"
    assert result.outputs["alpha"]["path"] == "[unknown]"
    assert toy.journal() == []
    assert not (toy.out / "box").exists()
    assert not toy.state.exists()


def test_up_creates_every_resource_with_real_side_effects(toy):
    result = up_ok(toy)
    assert len(result.ops("create")) == 7  # folder, 2 groups, 2 passwords, 2 notes
    assert (toy.out / "box" / "alpha.txt").read_text() == "hello"
    assert toy.journal() == ["create folder box", "create note alpha.txt", "create note beta.txt"]
    alpha = result.outputs["alpha"]
    assert alpha["path"] == str(toy.out / "box" / "alpha.txt")
    assert alpha["content"] == "hello"
    assert alpha["token"] == "[secret]"


def test_second_up_is_all_same_with_no_provider_mutation(toy):
    first = up_ok(toy, show_secrets=True)
    journal = toy.journal()
    second = up_ok(toy, show_secrets=True)
    assert [o["op"] for o in second.operations] == ["same"] * 7
    assert toy.journal() == journal
    # the RandomPassword keeps its value through the state
    assert second.outputs["alpha"]["token"] == first.outputs["alpha"]["token"]
    assert len(first.outputs["alpha"]["token"]) == 24


def test_changed_input_updates_only_that_resource(toy):
    up_ok(toy)
    ids = {r["name"]: r["id"] for r in toy.saved()}
    toy.configure([{"key": "alpha", "content": "hello"}, {"key": "beta", "content": "changed"}])

    preview = toy.run("preview")
    assert preview.op_of("beta", NOTE) == "update"
    assert (toy.out / "box" / "beta.txt").read_text() == "world"

    result = up_ok(toy)
    assert [(o["name"], o["op"]) for o in result.operations if o["op"] != "same"] == [("beta", "update")]
    assert toy.journal()[-1] == "update note beta.txt"
    assert len(toy.journal()) == 4
    assert (toy.out / "box" / "beta.txt").read_text() == "changed"
    assert {r["name"]: r["id"] for r in toy.saved()} == ids
    assert result.outputs["beta"]["content"] == "changed"


def test_replace_key_change_creates_the_new_resource_before_deleting_the_old(toy):
    up_ok(toy)
    toy.configure([{"key": "alpha", "content": "hello", "file": "alpha-v2.txt"}, {"key": "beta", "content": "world"}])
    assert toy.run("preview").op_of("alpha", NOTE) == "replace"
    result = up_ok(toy)
    assert result.op_of("alpha", NOTE) == "replace"
    assert [o for o in result.operations if o["op"] not in ("same", "replace")] == []
    journal = toy.journal()
    assert journal.index("create note alpha-v2.txt") < journal.index("delete note alpha.txt")
    assert not (toy.out / "box" / "alpha.txt").exists()
    assert (toy.out / "box" / "alpha-v2.txt").read_text() == "hello"
    assert [r["id"] for r in toy.saved() if r["name"] == "alpha" and r["type"] == NOTE] == [
        str(toy.out / "box" / "alpha-v2.txt")
    ]


def test_delete_before_replace_from_the_diff_deletes_the_old_resource_first(toy):
    toy.configure([{"key": "alpha", "content": "hello", "exclusive": True}])
    up_ok(toy)
    toy.configure([{"key": "alpha", "content": "hello", "exclusive": True, "file": "alpha-v2.txt"}])
    result = up_ok(toy)
    assert result.op_of("alpha", NOTE) == "replace"
    assert toy.journal()[-2:] == ["delete note alpha.txt", "create note alpha-v2.txt"]
    assert [r["id"] for r in toy.saved() if r["type"] == NOTE] == [str(toy.out / "box" / "alpha-v2.txt")]


def test_replacing_a_parent_replaces_dependents_and_deletes_old_ones_dependents_first(toy):
    up_ok(toy)
    toy.configure(
        [{"key": "alpha", "content": "hello"}, {"key": "beta", "content": "world"}], **{"toy:folder": "crate"}
    )
    result = up_ok(toy)
    assert result.op_of("crate", FOLDER) == "create"
    assert result.op_of("box", FOLDER) == "delete"
    assert result.op_of("alpha", NOTE) == result.op_of("beta", NOTE) == "replace"
    journal = toy.journal()[3:]
    # new folder and notes first; then old notes, and the old folder last (its rmdir needs it empty)
    assert journal[:3] == ["create folder crate", "create note alpha.txt", "create note beta.txt"]
    assert sorted(journal[3:5]) == ["delete note alpha.txt", "delete note beta.txt"]
    assert journal[5:] == ["delete folder box"]
    assert sorted(p.name for p in toy.out.iterdir()) == ["crate", "journal.log"]
    assert [o["op"] for o in up_ok(toy).operations] == ["same"] * 7


def test_state_secrets_cannot_be_read_without_the_key(toy):
    up_ok(toy)
    toy.state.with_name(toy.state.name + ".key").unlink()
    result = toy.run("up")
    assert result.exit_code == 2
    assert "CATWALK_HARNESS_SECRETS_KEY" in result.error
    assert toy.journal() == ["create folder box", "create note alpha.txt", "create note beta.txt"]


def test_removed_resources_are_deleted_with_their_component(toy):
    up_ok(toy)
    toy.configure([{"key": "alpha", "content": "hello"}])
    preview = toy.run("preview")
    assert {(o["name"], o["op"]) for o in preview.operations if o["op"] == "delete"} == {
        ("beta", "delete"),
        ("beta-token", "delete"),
    }
    assert (toy.out / "box" / "beta.txt").exists()

    result = up_ok(toy)
    assert sorted((o["type"], o["name"]) for o in result.ops("delete")) == [
        (NOTE, "beta"),
        ("random:index/randomPassword:RandomPassword", "beta-token"),
        ("toy:index:Group", "beta"),
    ]
    assert not (toy.out / "box" / "beta.txt").exists()
    assert "beta" not in result.outputs
    assert {r["name"] for r in toy.saved()} == {"box", "alpha", "alpha-token"}


def test_destroy_deletes_everything_dependents_first(toy):
    up_ok(toy)
    result = toy.run("destroy")
    assert result.ok, result.error
    assert len(result.ops("delete")) == 7 and len(result.operations) == 7
    # the folder is an rmdir that fails while notes remain in it
    assert toy.journal()[-3:] == ["delete note beta.txt", "delete note alpha.txt", "delete folder box"]
    assert sorted(p.name for p in toy.out.iterdir()) == ["journal.log"]
    assert toy.saved() == []
    again = toy.run("up")
    assert len(again.ops("create")) == 7


@pytest.mark.parametrize(("parallel", "overlap"), [(4, True), (1, False)])
def test_independent_steps_run_concurrently_unless_parallel_is_one(toy, parallel, overlap):
    toy.configure([{"key": k, "content": k, "independent": True, "delay": 0.4} for k in ("alpha", "beta")])
    result = up_ok(toy, parallel=parallel)
    assert len(result.ops("create")) == 7
    notes = [line for line in toy.journal() if "note" in line]
    assert (notes[1].startswith("begin")) is overlap, notes


def test_secret_outputs_are_masked_in_json_and_encrypted_in_state(toy):
    toy.configure([{"key": "alpha", "content": "hello"}], **{"toy:apiKey": {"secure": "v1:opaque"}})
    result = toy.cli("up", secrets={"toy:apiKey": API_KEY})
    assert result.ok, result.error
    assert result.outputs["api_key"] == "[secret]"
    assert result.outputs["alpha"]["token"] == "[secret]"
    assert result.outputs["alpha"]["content"] == "hello"

    shown = toy.run("up", secrets={"toy:apiKey": API_KEY}, show_secrets=True)
    assert shown.outputs["api_key"] == API_KEY
    token = shown.outputs["alpha"]["token"]
    assert len(token) == 24 and token != "[secret]"
    text = toy.state.read_text()
    assert API_KEY not in text and token not in text
    assert "$secret" in text
    key_file = toy.state.with_name(toy.state.name + ".key")
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_output_prints_the_last_ups_stack_outputs_like_pulumi_stack_output(toy):
    up = up_ok(toy, show_secrets=True)
    import subprocess
    import sys

    toy.config.unlink()  # reads the state only: no config, no secrets needed
    argv = [
        sys.executable,
        "-m",
        "tests.tools.harness",
        "output",
        "--stack",
        "test",
        "--project-dir",
        str(TOY),
        "--state",
        str(toy.state),
    ]
    masked = subprocess.run(argv, cwd=harness.REPO_ROOT, capture_output=True, text=True, timeout=120, check=True)
    shown = subprocess.run(
        [*argv, "--show-secrets"], cwd=harness.REPO_ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(shown.stdout) == up.outputs
    assert json.loads(masked.stdout)["alpha"] == {**up.outputs["alpha"], "token": "[secret]"}
    assert toy.journal() == ["create folder box", "create note alpha.txt", "create note beta.txt"]


def test_a_mistyped_stack_is_refused_before_anything_runs(toy):
    result = harness.run("up", "tset", project_dir=TOY, state=toy.state)
    assert result.exit_code == 2
    assert "Pulumi.tset.yaml" in result.error
    assert not toy.state.exists() and toy.journal() == []


def test_secure_config_without_a_supplied_value_names_the_way_to_supply_it(toy):
    toy.configure([{"key": "alpha", "content": "hello"}], **{"toy:apiKey": {"secure": "v1:opaque"}})
    result = toy.run("up")
    assert result.exit_code == 2
    assert "CATWALK_HARNESS_SECRET_TOY_APIKEY" in result.error and "--secret" in result.error
    via_env = toy.cli("up", env={"CATWALK_HARNESS_SECRET_TOY_APIKEY": API_KEY}, show_secrets=True)
    assert via_env.ok, via_env.error
    assert via_env.outputs["api_key"] == API_KEY


def test_failing_check_exits_nonzero_naming_the_field(toy):
    toy.configure([{"key": "alpha", "content": "a forbidden word"}])
    for command in ("preview", "up"):
        result = toy.cli(command)
        assert result.exit_code == 1
        assert "content: must not contain the word 'forbidden'" in result.error
        assert "toy:Note 'alpha'" in result.error
    assert "create note alpha.txt" not in toy.journal()


def test_failing_create_keeps_what_succeeded_and_the_next_up_resumes(toy):
    toy.configure([{"key": "alpha", "content": "hello"}, {"key": "beta", "content": "world", "fail_create": True}])
    failed = toy.run("up")  # in-process, then more in-process runs: nothing carries over
    assert failed.exit_code == 1
    assert "create failed: toy disk is full, cannot write beta.txt" in failed.error
    saved = {(r["type"], r["name"]) for r in toy.saved()}
    assert {(FOLDER, "box"), (NOTE, "alpha")} <= saved
    assert (NOTE, "beta") not in saved
    assert (NOTE, "beta") not in {(o["type"], o["name"]) for o in failed.operations}
    assert failed.op_of("alpha", NOTE) == "create"

    toy.configure([{"key": "alpha", "content": "hello"}, {"key": "beta", "content": "world"}])
    resumed = up_ok(toy)
    assert resumed.op_of("alpha", NOTE) == "same"
    assert resumed.op_of("beta", NOTE) == "create"
    assert toy.journal().count("create note alpha.txt") == 1


def test_in_process_run_works_where_a_unit_test_already_called_set_mocks(toy):
    import contextvars

    import pulumi

    class Mocks(pulumi.runtime.Mocks):
        def new_resource(self, args):
            return args.name, args.inputs

        def call(self, args):
            return {}, []

    def inside_unit_test_context() -> harness.Result:
        pulumi.runtime.set_mocks(Mocks(), project="other", stack="unit")
        return toy.run("up")

    result = contextvars.copy_context().run(inside_unit_test_context)
    assert result.ok, result.error
    assert len(result.ops("create")) == 7


def test_cli_prints_a_readable_table_and_the_json_shape(toy, tmp_path):
    result = toy.cli("preview")
    assert result.ok, result.error
    assert set(result.operations[0]) == {"type", "name", "op"}
    import subprocess
    import sys

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.tools.harness",
            "preview",
            "--stack",
            "test",
            "--project-dir",
            str(TOY),
            "--config-file",
            str(toy.config),
            "--state",
            str(toy.state),
        ],
        cwd=harness.REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "create" in proc.stdout and "toy:Note" in proc.stdout and "alpha" in proc.stdout


def test_a_provider_defined_in_the_program_is_revived_by_value_even_for_destroy(tmp_path):
    program = Path(__file__).resolve().parents[1] / "fixtures" / "harness" / "inline"
    config = tmp_path / "Pulumi.t.yaml"
    config.write_text(yaml.safe_dump({"config": {"inline:dir": str(tmp_path)}}))
    common = {"project_dir": program, "config_file": config, "state": tmp_path / "s.json"}
    up = harness.run("up", "t", **common)
    assert up.ok, up.error
    assert up.ops() == [{"type": "pulumi-python:dynamic:Resource", "name": "flag", "op": "create"}]
    assert (tmp_path / "flag").read_text() == "here"
    destroyed = harness.run_subprocess("destroy", "t", **common)
    assert destroyed.ok, destroyed.error
    assert destroyed.ops("delete") and not (tmp_path / "flag").exists()


@pytest.mark.parametrize(
    ("diff", "replace_on_changes", "expected"),
    [
        (None, [], "update"),
        (type("D", (), {"changes": False, "replaces": ["x"]})(), [], "same"),
        (type("D", (), {"changes": True, "replaces": ["x"], "delete_before_replace": True})(), [], "replace"),
        (type("D", (), {"changes": True, "replaces": []})(), ["x"], "replace"),
    ],
)
def test_diff_results_map_to_engine_operations(diff, replace_on_changes, expected):
    decision = decide({"x": 1}, {"x": 2}, diff, replace_on_changes, False)
    assert decision.op == expected


def test_unchanged_inputs_without_a_provider_diff_are_same():
    assert decide({"x": 1}, {"x": 1}, None, [], False).op == "same"
    assert decide(None, {"x": 1}, None, [], False).op == "create"


def test_random_password_honours_classes_and_minimums():
    value = random_string({"length": 30, "special": False, "upper": False, "minNumeric": 10})
    assert len(value) == 30
    assert value.isalnum() and value == value.lower()
    assert sum(c.isdigit() for c in value) >= 10


def test_stack_config_passes_structured_values_as_json_and_marks_secure_ones_secret(tmp_path):
    from tests.tools.harness.stackconfig import ConfigError, load_stack_config

    path = tmp_path / "Pulumi.s.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "config": {
                    "app:servers": [{"name": "a", "env": {"TOKEN": {"secure": "v1:xx"}}}],
                    "app:count": 3,
                    "region": "iad",
                    "app:debug": True,
                }
            }
        )
    )
    cfg = load_stack_config(path, "app", {"app:servers[0].env.TOKEN": "t0k", "app:github.TOKEN": "gh"}, {})
    assert json.loads(cfg.values["app:servers"]) == [{"name": "a", "env": {"TOKEN": "t0k"}}]
    assert cfg.values["app:count"] == "3" and cfg.values["app:region"] == "iad"
    assert cfg.values["app:debug"] == "true"
    assert cfg.values["app:github.TOKEN"] == "gh"
    assert cfg.secret_keys == {"app:servers", "app:github.TOKEN"}
    with pytest.raises(ConfigError, match="CATWALK_HARNESS_SECRET_APP_SERVERS_0__ENV_TOKEN"):
        load_stack_config(path, "app", {}, {})
    from_env = load_stack_config(path, "app", {}, {"CATWALK_HARNESS_SECRET_APP_SERVERS_0__ENV_TOKEN": "e"})
    assert json.loads(from_env.values["app:servers"])[0]["env"]["TOKEN"] == "e"


def test_state_round_trips_nested_secrets_encrypted(tmp_path):
    from tests.tools.harness.state import Entry, State, StateFile
    from tests.tools.harness.values import Secret, mark_secret_keys

    outputs = mark_secret_keys({"keepers": {"api": Secret("k-123"), "region": "iad"}, "n": 1.0}, {"keepers"})
    assert outputs["keepers"] == Secret({"api": "k-123", "region": "iad"})
    store = StateFile(tmp_path / "s.json")
    entry = Entry("urn:x", "t", "x", True, "id", "", {"args": ["a", Secret("k-123")]}, outputs, provider="blob")
    store.save(State("p", "s", [entry], {"out": {"token": Secret("k-123")}}))
    assert "k-123" not in (tmp_path / "s.json").read_text()
    loaded = store.load("p", "s")
    assert loaded.resources == [entry]
    assert loaded.outputs == {"out": {"token": Secret("k-123")}}


def test_resource_references_reach_providers_as_ids_or_urns_and_secrets_stay_at_the_leaf():
    from google.protobuf import struct_pb2

    from tests.tools.harness import values as v

    struct = struct_pb2.Struct()
    struct.update(
        {
            "app": {v.SIG_KEY: v.RESOURCE_SIG, "urn": "urn:app", "id": "app-1"},
            "group": {v.SIG_KEY: v.RESOURCE_SIG, "urn": "urn:group", "id": ""},
            "pending": {v.SIG_KEY: v.RESOURCE_SIG, "urn": "urn:p", "id": v.UNKNOWN_SENTINEL},
            "server": {"url": "https://x/mcp", "token": {v.SIG_KEY: v.SECRET_SIG, "value": "t"}},
        }
    )
    props = v.from_struct(struct)
    assert props["app"] == "app-1" and props["group"] == "urn:group" and props["pending"] is v.UNKNOWN
    assert props["server"] == {"url": "https://x/mcp", "token": v.Secret("t")}
    assert v.render(props["server"], show_secrets=False) == {"url": "https://x/mcp", "token": "[secret]"}
