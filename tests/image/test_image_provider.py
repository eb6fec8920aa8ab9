"""The image provider driven as the Pulumi engine drives it, against the fake `docker` on PATH.

`Engine` mimics what `pulumi preview` / `pulumi up` do with a dynamic provider: `check` the new inputs,
`diff` them against the previous *outputs* in state, then `create`, `update` or nothing (and, in preview,
stop after `diff`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import dill
import pytest
from pulumi.dynamic import Config, ConfigureRequest
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.output import Unknown
from pulumi.runtime import rpc

from components.image import ImageBuildError, ImageProvider
from components.image.baked import baked_build, render_baked_dockerfile
from components.image.provider import context_inputs
from tests.tools.fakes import fake_docker
from tests.tools.fakes.fake_docker import TOKEN

APP = "catwalk-dev-images"
BASE = f"registry.fly.io/{APP}@sha256:" + "ab" * 32


class Engine:
    """State of one resource across runs, as the engine keeps it: last inputs, outputs and id."""

    def __init__(self) -> None:
        self.provider = ImageProvider()
        self.inputs: dict[str, Any] | None = None
        self.outputs: dict[str, Any] | None = None
        self.id: str | None = None

    def _check(self, news: dict[str, Any]) -> dict[str, Any]:
        result = self.provider.check(self.inputs or {}, dict(news))
        assert not result.failures, [(f.property, f.reason) for f in result.failures]
        return result.inputs

    def preview(self, news: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        checked = self._check(news)
        if self.outputs is None:
            return "create", checked
        diff = self.provider.diff(self.id, self.outputs, checked)
        if not diff.changes:
            return "same", checked
        return ("replace" if diff.replaces else "update"), checked

    def up(self, news: dict[str, Any]) -> str:
        action, checked = self.preview(news)
        if action in ("create", "replace"):
            created = self.provider.create(checked)
            self.id, self.outputs = created.id, created.outs
        elif action == "update":
            self.outputs = self.provider.update(self.id, self.outputs, checked).outs
        self.inputs = checked
        return action


@pytest.fixture
def docker(tmp_path: Path, monkeypatch) -> fake_docker.FakeDocker:
    return fake_docker.install(tmp_path, monkeypatch)


@pytest.fixture
def deploy(tmp_path: Path) -> Path:
    root = tmp_path / "repo" / "deploy"
    root.mkdir(parents=True)
    (root / "Dockerfile").write_text("FROM python:3.12-slim-bookworm\nCOPY --chmod=0755 entrypoint.sh /app/\n")
    (root / "entrypoint.sh").write_text("#!/bin/sh\nset -eu\nexec /app/gateway.py\n")
    (root / "entrypoint.sh").chmod(0o755)
    return root


def unified(deploy: Path) -> dict[str, Any]:
    return context_inputs(app=APP, context_dir=deploy)


def baked(**change: Any) -> dict[str, Any]:
    return {
        "kind": "baked",
        "app": "catwalk-dev-git",
        "base": BASE,
        "runtime": "python",
        "package": "mcp-server-git==2025.1.14",
        "launch": ["mcp-server-git"],
        "resolved_at": "2025-01-14T09:30:00Z",
        **change,
    }


# --- acceptance --------------------------------------------------------------------------------------


def test_two_ups_without_a_change_to_deploy_build_once(docker, deploy: Path):
    engine = Engine()
    assert engine.up(unified(deploy)) == "create"
    assert engine.up(unified(deploy)) == "same"
    assert len(docker.builds()) == 1


def test_touching_entrypoint_changes_the_tag_and_rebuilds(docker, deploy: Path):
    engine = Engine()
    engine.up(unified(deploy))
    first = dict(engine.outputs)
    with (deploy / "entrypoint.sh").open("a") as handle:
        handle.write("# touched\n")
    assert engine.up(unified(deploy)) == "update"
    assert engine.outputs["tag"] != first["tag"]
    assert engine.outputs["image_ref"] != first["image_ref"]
    builds = docker.builds()
    assert len(builds) == 2
    assert builds[1]["build"]["tags"] == [f"registry.fly.io/{APP}:{engine.outputs['tag']}"]


def test_outputs_carry_the_pushed_digest_and_a_digest_pinned_ref(docker, deploy: Path):
    engine = Engine()
    engine.up(unified(deploy))
    pushed = docker.builds()[0]["digest"]
    assert engine.outputs["digest"] == pushed
    assert engine.outputs["image_ref"] == f"registry.fly.io/{APP}@{pushed}"
    assert engine.outputs["repository"] == f"registry.fly.io/{APP}"
    assert engine.outputs["tag"].startswith("ctx-")
    assert engine.id == f"registry.fly.io/{APP}"


# --- preview and what does not rebuild -----------------------------------------------------------------


def test_preview_of_a_changed_context_shows_the_new_tag_and_runs_no_docker(docker, deploy: Path):
    engine = Engine()
    engine.up(unified(deploy))
    docker.clear()
    (deploy / "entrypoint.sh").write_text("#!/bin/sh\necho changed\n")
    action, checked = engine.preview(unified(deploy))
    assert action == "update"
    assert checked["tag"] != engine.outputs["tag"]
    assert docker.calls() == []


def test_preview_of_a_new_image_runs_no_docker(docker, deploy: Path):
    action, checked = Engine().preview(unified(deploy))
    assert action == "create" and checked["tag"].startswith("ctx-")
    assert docker.calls() == []


def test_git_editor_cache_and_test_files_in_deploy_do_not_rebuild_and_are_not_sent(docker, deploy: Path):
    engine = Engine()
    engine.up(unified(deploy))
    for junk in (".git/index", ".entrypoint.sh.swp", ".DS_Store", "__pycache__/x.pyc", "tests/test_entry.py"):
        (deploy / junk).parent.mkdir(parents=True, exist_ok=True)
        (deploy / junk).write_text("junk\n")
    assert engine.up(unified(deploy)) == "same"
    (deploy / "entrypoint.sh").write_text("#!/bin/sh\necho v2\n")
    assert engine.up(unified(deploy)) == "update"
    assert sorted(docker.builds()[-1]["context_files"]) == ["Dockerfile", "entrypoint.sh"]


def test_a_moved_checkout_with_the_same_content_does_not_rebuild(docker, deploy: Path, tmp_path: Path):
    engine = Engine()
    engine.up(unified(deploy))
    moved = tmp_path / "moved" / "deploy"
    moved.parent.mkdir()
    deploy.rename(moved)
    assert engine.up(unified(moved)) == "same"
    assert len(docker.builds()) == 1


def test_a_context_changed_during_up_is_refused_rather_than_pushed_under_the_old_tag(docker, deploy: Path):
    engine = Engine()
    checked = engine._check(unified(deploy))
    (deploy / "entrypoint.sh").write_text("#!/bin/sh\necho raced\n")
    with pytest.raises(ImageBuildError, match="changed while `pulumi up` was running"):
        engine.provider.create(checked)
    assert docker.builds() == []


def test_a_state_without_a_digest_is_rebuilt(docker, deploy: Path):
    engine = Engine()
    engine.up(unified(deploy))
    engine.outputs = {k: v for k, v in engine.outputs.items() if k not in ("digest", "image_ref")}
    assert engine.up(unified(deploy)) == "update"
    assert engine.outputs["digest"].startswith("sha256:")


def test_another_app_is_a_replacement(docker, deploy: Path):
    engine = Engine()
    engine.up(unified(deploy))
    assert engine.up({**unified(deploy), "app": "catwalk-prod-images"}) == "replace"
    assert engine.outputs["image_ref"].startswith("registry.fly.io/catwalk-prod-images@sha256:")


def test_diff_states_stables_and_changes_explicitly(docker, deploy: Path):
    engine = Engine()
    engine.up(unified(deploy))
    same = engine.provider.diff(engine.id, engine.outputs, engine._check(unified(deploy)))
    assert same.changes is False and same.replaces == []
    assert {"image_ref", "digest", "tag", "repository"} <= set(same.stables)
    (deploy / "Dockerfile").write_text("FROM python:3.13-slim\n")
    changed = engine.provider.diff(engine.id, engine.outputs, engine._check(unified(deploy)))
    assert changed.changes is True and changed.replaces == []
    assert "image_ref" not in changed.stables and "digest" not in changed.stables and "tag" not in changed.stables
    assert {"repository", "app", "kind", "platform"} <= set(changed.stables)
    replaced = engine.provider.diff(engine.id, engine.outputs, engine._check({**unified(deploy), "app": "other"}))
    assert replaced.changes is True and replaced.replaces == ["app"]
    assert "app" not in replaced.stables and "repository" not in replaced.stables


def test_a_baked_update_marks_the_changed_values_unstable(docker):
    engine = Engine()
    engine.up(baked())
    diff = engine.provider.diff(engine.id, engine.outputs, engine._check(baked(package="mcp-server-git==2025.1.15")))
    assert diff.changes is True and diff.replaces == []
    assert "package" not in diff.stables and "image_ref" not in diff.stables
    assert {"base", "runtime", "launch", "resolved_at", "app", "repository"} <= set(diff.stables)


# --- the registry token ---------------------------------------------------------------------------------


def test_docker_login_writes_a_temporary_docker_config_never_the_users(docker, deploy: Path, tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / ".docker" / "cli-plugins").mkdir(parents=True)
    (home / ".docker" / "config.json").write_text(json.dumps({"currentContext": "colima", "auths": {}}))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)
    Engine().up(unified(deploy))

    assert json.loads((home / ".docker" / "config.json").read_text()) == {"currentContext": "colima", "auths": {}}
    assert TOKEN not in "".join(p.read_text() for p in (home / ".docker").rglob("*") if p.is_file())
    configs = {c["docker_config"] for c in docker.calls()}
    assert len(configs) == 1, "buildx, login and the push share one Docker config"
    [used] = configs
    assert not used.startswith(str(home)) and not Path(used).exists(), "removed once the push is done"


def test_the_temporary_docker_config_keeps_the_users_plugins_and_context(tmp_path, monkeypatch):
    from components.image.docker_config import temporary_docker_config

    user = tmp_path / "docker"
    (user / "cli-plugins").mkdir(parents=True)
    (user / "config.json").write_text(json.dumps({"currentContext": "colima", "auths": {"x": {"auth": "c2Vj"}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(user))
    with temporary_docker_config() as config_dir:
        assert (Path(config_dir) / "cli-plugins").resolve() == (user / "cli-plugins").resolve()
        assert json.loads((Path(config_dir) / "config.json").read_text()) == {"currentContext": "colima"}
        assert oct(Path(config_dir).stat().st_mode & 0o777) == "0o700"
    assert not Path(config_dir).exists()


def test_token_goes_to_docker_login_on_stdin_only(docker, deploy: Path):
    engine = Engine()
    engine.up(unified(deploy))
    calls = docker.calls()
    assert [c["argv"][:2] for c in calls] == [["buildx", "version"], ["login", "registry.fly.io"], ["buildx", "build"]]
    login = calls[1]
    assert login["argv"] == ["login", "registry.fly.io", "--username", "x", "--password-stdin"]
    assert login["stdin"].strip() == TOKEN
    for call in calls:
        assert TOKEN not in json.dumps(call["argv"])
        assert call["token_in_env"] is False
    state = json.dumps([engine.inputs, engine.outputs])
    assert TOKEN not in state


def test_provider_pickles_by_reference_and_carries_no_token(docker):
    payload = serialize_provider(ImageProvider())
    raw = base64.b64decode(payload)
    assert b"components.image.provider" in raw and b"ImageProvider" in raw
    assert TOKEN.encode() not in raw
    assert len(raw) < 400  # a reference to the class, not a copy of its code
    assert isinstance(dill.loads(raw), ImageProvider)
    assert vars(ImageProvider()) == {}


def test_a_token_from_stack_config_is_used_and_never_pickled(docker, deploy: Path, monkeypatch):
    monkeypatch.delenv("FLY_API_TOKEN")
    configured = "fly-config-token-9Kp2"
    engine = Engine()
    engine.provider.configure(ConfigureRequest(Config({"catwalk:flyApiToken": configured}, "catwalk")))
    engine.up(unified(deploy))
    (login,) = [c for c in docker.calls() if c["argv"][0] == "login"]
    assert login["stdin"].strip() == configured
    assert configured.encode() not in base64.b64decode(serialize_provider(engine.provider))
    assert configured not in json.dumps(engine.outputs)


def test_without_a_fly_token_nothing_runs_and_the_error_says_how_to_set_it(docker, deploy: Path, monkeypatch):
    monkeypatch.delenv("FLY_API_TOKEN")
    engine = Engine()
    with pytest.raises(ImageBuildError, match=r"FLY_API_TOKEN is not set.*fly auth token"):
        engine.up(unified(deploy))
    assert docker.calls() == []


# --- failures --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "expected", "ran"),
    [
        # docker 28 without buildx: `docker build` refuses BuildKit, so the build fails with the install advice.
        ("no-buildx", r"no buildx plugin: install it .*docker-buildx.*catwalk:image", ["version", "login", "build"]),
        ("no-daemon", r"no Docker engine is reachable: start Docker.*catwalk:image", ["version", "login", "build"]),
        (
            "login-auth",
            r"docker login registry.fly.io failed: the Fly registry refused FLY_API_TOKEN.*fly auth whoami",
            ["version", "login"],
        ),
        (
            "push-auth",
            r"refused FLY_API_TOKEN for registry.fly.io/catwalk-dev-images.*401 Unauthorized",
            ["version", "login", "build"],
        ),
        (
            "push-quota",
            r"refused the push .* for quota, size or rate: wait.*429 Too Many Requests",
            ["version", "login", "build"],
        ),
        (
            "no-app",
            r"the Fly app 'catwalk-dev-images' must exist.*fly apps create catwalk-dev-images",
            ["version", "login", "build"],
        ),
    ],
)
def test_docker_failures_fail_the_update_with_what_to_do(docker, deploy: Path, mode: str, expected: str, ran):
    docker.mode(mode)
    engine = Engine()
    with pytest.raises(ImageBuildError, match="(?s)" + expected) as caught:
        engine.up(unified(deploy))
    message = str(caught.value)
    assert message.startswith(f"image registry.fly.io/{APP}:ctx-")
    assert TOKEN not in message
    assert [c["argv"][0] if c["argv"][0] in ("login", "build") else c["argv"][1] for c in docker.calls()] == ran
    assert engine.outputs is None  # a failed create leaves nothing in state


def test_no_docker_on_path_fails_with_install_advice(docker, deploy: Path, monkeypatch, tmp_path: Path):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(ImageBuildError, match=r"`docker` command was not found on PATH: install Docker"):
        Engine().up(unified(deploy))


def test_digest_is_read_from_buildx_progress_when_there_is_no_metadata_file(docker, deploy: Path, monkeypatch):
    monkeypatch.setenv("FAKE_DOCKER_NO_METADATA", "1")
    engine = Engine()
    engine.up(unified(deploy))
    assert engine.outputs["digest"] == docker.builds()[0]["digest"]


# --- baked images -----------------------------------------------------------------------------------------


def test_baked_image_builds_a_generated_dockerfile_from_the_pinned_base_with_build_args(docker):
    engine = Engine()
    assert engine.up(baked()) == "create"
    build = docker.builds()[0]
    assert sorted(build["context_files"]) == ["Dockerfile"]
    assert build["build"]["build_args"] == {
        "MCP_LAUNCH": '["mcp-server-git"]',
        "MCP_PACKAGE": "mcp-server-git==2025.1.14",
        "MCP_RESOLVED_AT": "2025-01-14T09:30:00Z",
        "MCP_RUNTIME": "python",
    }
    assert build["build"]["tags"] == [f"registry.fly.io/catwalk-dev-git:{engine.outputs['tag']}"]
    assert engine.outputs["tag"].startswith("bake-")
    assert engine.outputs["image_ref"] == f"registry.fly.io/catwalk-dev-git@{build['digest']}"


def test_baked_image_rebuilds_when_the_base_or_the_pin_changes_and_not_otherwise(docker):
    engine = Engine()
    engine.up(baked())
    assert engine.up(baked()) == "same"
    assert engine.up(baked(base=BASE.replace("ab" * 32, "cd" * 32))) == "update"
    assert engine.up(baked(package="mcp-server-git==2025.1.15")) == "update"
    assert len(docker.builds()) == 3


@pytest.mark.parametrize(
    "unknown",
    [Unknown(), rpc.UNKNOWN, [Unknown()]],
    ids=["sdk-unknown", "wire-sentinel", "inside-a-list"],
)
def test_baked_preview_with_unknown_values_plans_a_rebuild_without_failing(docker, unknown):
    engine = Engine()
    engine.up(baked())
    docker.clear()
    field = "launch" if isinstance(unknown, list) else "base"
    action, checked = engine.preview(baked(**{field: unknown}))
    assert action == "update"
    assert "tag" not in checked
    assert docker.calls() == []


def test_bad_baked_values_are_check_failures_naming_the_property(docker):
    result = ImageProvider().check({}, baked(package="mcp-server-git", launch=["--evil"]))
    assert [f.property for f in result.failures] == ["package"]
    assert "pinned python package" in result.failures[0].reason
    result = ImageProvider().check({}, baked(runtime="custom"))
    assert [(f.property, "nothing to bake" in f.reason) for f in result.failures] == [("runtime", True)]
    result = ImageProvider().check({}, baked(app="Bad_App"))
    assert [f.property for f in result.failures] == ["app"]


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_a_browser_server_is_baked_with_chromium_and_others_exactly_as_before(docker):
    plain, browser = Engine(), Engine()
    assert plain.up(baked()) == "create" and browser.up(baked(browser=True)) == "create"
    plain_build, browser_build = docker.builds()
    with_chromium = render_baked_dockerfile(base=BASE, browser=True)
    assert "apt-get install -y --no-install-recommends chromium fonts-liberation" in with_chromium
    assert browser_build["context_files"]["Dockerfile"] == sha256(with_chromium)
    assert plain_build["context_files"]["Dockerfile"] == sha256(render_baked_dockerfile(base=BASE))
    assert plain.outputs["browser"] is False and browser.outputs["browser"] is True
    assert browser.outputs["tag"] != plain.outputs["tag"]
    # Without the field, the image is what it was before the field existed.
    before = baked_build(**{k: v for k, v in baked().items() if k not in ("kind", "app")})
    assert plain.outputs["tag"] == before.tag and plain.outputs["content_hash"] == before.content_hash


def test_a_state_recorded_before_the_browser_field_shows_no_change(docker):
    engine = Engine()
    engine.up(baked())
    engine.inputs = {k: v for k, v in engine.inputs.items() if k != "browser"}
    engine.outputs = {k: v for k, v in engine.outputs.items() if k != "browser"}
    docker.clear()
    diff = engine.provider.diff(engine.id, engine.outputs, engine._check(baked()))
    assert diff.changes is False and diff.replaces == []
    assert engine.up(baked()) == "same"
    assert docker.calls() == []


def test_a_server_that_starts_driving_a_browser_is_rebuilt_in_place(docker):
    engine = Engine()
    engine.up(baked())
    assert engine.up(baked(browser=True)) == "update"
    rebuilt = docker.builds()[-1]["context_files"]["Dockerfile"]
    assert rebuilt == sha256(render_baked_dockerfile(base=BASE, browser=True))
    assert engine.up(baked(browser=True)) == "same"


def test_a_browser_value_that_is_not_a_boolean_is_a_check_failure_naming_it():
    result = ImageProvider().check({}, baked(browser="yes"))
    assert [f.property for f in result.failures] == ["browser"]
    assert "true or false" in result.failures[0].reason


# --- prebuilt images --------------------------------------------------------------------------------------


def test_prebuilt_image_with_a_digest_is_passed_through_pinned_without_docker(docker):
    ref = "ghcr.io/me/catwalk-runtime:1.2@sha256:" + "ef" * 32
    engine = Engine()
    assert engine.up({"kind": "prebuilt", "ref": ref}) == "create"
    assert engine.outputs["image_ref"] == ref
    assert engine.outputs["digest"] == "sha256:" + "ef" * 32
    assert engine.outputs["tag"] == "1.2"
    assert docker.calls() == []


def test_prebuilt_image_by_tag_is_passed_through_as_given(docker, monkeypatch):
    monkeypatch.delenv("FLY_API_TOKEN")  # no token is needed when nothing is built
    engine = Engine()
    engine.up({"kind": "prebuilt", "ref": "registry.fly.io/my-images:v3"})
    assert engine.outputs["image_ref"] == "registry.fly.io/my-images:v3"
    assert engine.outputs["digest"] == ""
    assert engine.up({"kind": "prebuilt", "ref": "registry.fly.io/my-images:v3"}) == "same"
    assert engine.up({"kind": "prebuilt", "ref": "registry.fly.io/my-images:v4"}) == "update"
    assert docker.calls() == []


def test_switching_from_building_to_a_prebuilt_image_replaces_without_building(docker, deploy: Path):
    engine = Engine()
    engine.up(unified(deploy))
    assert engine.up({"kind": "prebuilt", "ref": "registry.fly.io/my-images:v3"}) == "replace"
    assert len(docker.builds()) == 1


def test_a_bad_prebuilt_reference_is_a_check_failure():
    result = ImageProvider().check({}, {"kind": "prebuilt", "ref": "ghcr.io/me/x:1;rm -rf /"})
    assert [f.property for f in result.failures] == ["ref"]


def test_read_keeps_what_was_pushed(docker, deploy: Path):
    engine = Engine()
    engine.up(unified(deploy))
    read = engine.provider.read(engine.id, {**engine.outputs, "__provider": "x"})
    assert read.id == engine.id and read.outs == engine.outputs


def test_fake_docker_is_on_path_for_these_tests(docker):
    assert os.environ["PATH"].split(os.pathsep)[0] == str(fake_docker.FAKES)


# --- a docker without buildx (Debian's and Ubuntu's docker.io) -------------------------------------------


def test_without_buildx_it_builds_with_docker_build_and_reports_the_digest_docker_push_printed(docker, deploy: Path):
    docker.mode("docker-io")
    engine = Engine()
    assert engine.up(unified(deploy)) == "create"
    calls = docker.calls()
    assert [c["argv"][0] for c in calls] == ["buildx", "login", "build", "push"]
    build, push = calls[2], calls[3]
    ref = f"registry.fly.io/{APP}:{engine.outputs['tag']}"
    assert build["build"]["tags"] == [ref] and build["build"]["platform"] == "linux/amd64"
    assert push["argv"] == ["push", ref]
    assert engine.outputs["digest"] == push["digest"]
    assert engine.outputs["image_ref"] == f"registry.fly.io/{APP}@{push['digest']}"
    assert all(c["token_in_env"] is False and TOKEN not in json.dumps(c["argv"]) for c in calls)


def test_without_buildx_a_baked_image_gets_its_values_as_build_args(docker):
    docker.mode("docker-io")
    engine = Engine()
    engine.up(baked())
    [build] = [c for c in docker.calls() if c["argv"][0] == "build"]
    assert build["build"]["build_args"]["MCP_PACKAGE"] == "mcp-server-git==2025.1.14"
    assert "MCP_PACKAGE" in build["context_files"] or "Dockerfile" in build["context_files"]


def test_the_registry_and_build_network_come_from_the_environment(docker, deploy: Path, monkeypatch):
    docker.mode("docker-io")
    monkeypatch.setenv("CATWALK_REGISTRY", "127.0.0.1:5000")
    monkeypatch.setenv("CATWALK_BUILD_NETWORK", "host")
    engine = Engine()
    engine.up(unified(deploy))
    login, build, push = docker.calls()[1:]
    assert login["argv"][:2] == ["login", "127.0.0.1:5000"]
    assert build["build"]["network"] == "host"
    assert push["argv"] == ["push", f"127.0.0.1:5000/{APP}:{engine.outputs['tag']}"]
    assert engine.outputs["image_ref"].startswith(f"127.0.0.1:5000/{APP}@sha256:")


def test_another_registry_replaces_the_image(docker, deploy: Path, monkeypatch):
    engine = Engine()
    engine.up(unified(deploy))
    monkeypatch.setenv("CATWALK_REGISTRY", "127.0.0.1:5000")
    diff = engine.provider.diff(engine.id, engine.outputs, engine._check(unified(deploy)))
    assert diff.changes is True and diff.replaces == ["repository"]


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("CATWALK_REGISTRY", "https://registry.example", "CATWALK_REGISTRY: 'https://registry.example' is not"),
        ("CATWALK_BUILD_NETWORK", "bridge0", "CATWALK_BUILD_NETWORK: 'bridge0' is not one of host, none"),
    ],
)
def test_bad_registry_or_build_network_settings_fail_the_check_naming_the_variable(
    docker, deploy: Path, monkeypatch, name, value, expected
):
    monkeypatch.setenv(name, value)
    result = ImageProvider().check({}, unified(deploy))
    assert [(f.property, f.reason[: len(expected)]) for f in result.failures] == [("repository", expected)]
    assert docker.calls() == []
