"""The docker command lines, digest parsing and pinning, and how failures are explained."""

from __future__ import annotations

import json

import pytest

from components.image import docker_cli as cli

DIGEST = "sha256:" + "0123456789abcdef" * 4
REF = "registry.fly.io/catwalk-dev-images:ctx-0123456789abcdef"


def test_build_is_one_buildx_command_for_amd64_that_pushes_the_content_tag():
    argv = cli.build_command(ref=REF, context_dir="/tmp/ctx", metadata_file="/tmp/meta.json")
    assert argv[:3] == ["docker", "buildx", "build"]
    assert argv[argv.index("--platform") + 1] == "linux/amd64"
    assert "--push" in argv
    assert argv[argv.index("--tag") + 1] == REF
    assert argv[argv.index("--metadata-file") + 1] == "/tmp/meta.json"
    # A plain single-platform manifest (no attestation index) is what Fly pulls.
    assert "--provenance=false" in argv and "--sbom=false" in argv
    assert argv[-1] == "/tmp/ctx"


def test_build_args_are_single_argv_words_with_values_verbatim():
    value = '["srv","--x","a b $HOME \\"q\\""]'
    argv = cli.build_command(
        ref=REF, context_dir="/c", metadata_file="/m", build_args={"MCP_LAUNCH": value, "MCP_RUNTIME": "npm"}
    )
    pairs = [argv[i + 1] for i, word in enumerate(argv) if word == "--build-arg"]
    assert pairs == ["MCP_LAUNCH=" + value, "MCP_RUNTIME=npm"]


def test_login_reads_the_password_from_stdin_and_never_from_argv():
    assert cli.login_command() == ["docker", "login", "registry.fly.io", "--username", "x", "--password-stdin"]
    assert not any(word.startswith(("-p", "--password=")) for word in cli.login_command())


def test_digest_comes_from_buildx_metadata_when_progress_does_not_name_it():
    metadata = json.dumps({"containerimage.digest": DIGEST, "image.name": REF})
    assert cli.parse_digest(metadata, "#3 DONE 2.8s\n") == DIGEST


def test_the_pushed_manifest_line_wins_over_metadata():
    metadata = json.dumps({"containerimage.digest": "sha256:" + "e" * 64})
    assert cli.parse_digest(metadata, f"#9 pushing manifest for {REF}@{DIGEST} 0.2s done\n") == DIGEST


def test_an_image_id_in_the_metadata_is_not_taken_for_the_pushed_digest():
    image_id = "sha256:" + "c" * 64
    metadata = json.dumps({"containerimage.digest": image_id, "containerimage.config.digest": image_id})
    with pytest.raises(cli.ImageBuildError, match="no pushed manifest digest"):
        cli.parse_digest(metadata, "#3 DONE\n")


def test_digest_falls_back_to_the_pushed_manifest_line_of_buildx_progress():
    output = (
        f"#12 exporting manifest sha256:{'f' * 64} 0.0s done\n"
        f"#12 pushing manifest for {REF}@{DIGEST}\n"
        f"#12 pushing manifest for {REF}@{DIGEST} 0.4s done\n"
    )
    assert cli.parse_digest(None, output) == DIGEST
    assert cli.parse_digest('{"containerimage.digest": "sha256:short"}', output) == DIGEST
    assert cli.parse_digest("not json", output) == DIGEST


def test_digest_falls_back_to_docker_push_output():
    output = f"ctx-0123456789abcdef: digest: {DIGEST} size: 1784\n"
    assert cli.parse_digest(None, output) == DIGEST


def test_no_digest_anywhere_is_an_error_not_a_guess():
    with pytest.raises(cli.ImageBuildError, match="no pushed manifest digest"):
        cli.parse_digest("{}", "#3 exporting layers done\n")


def test_pinned_ref_and_split_ref():
    assert cli.pinned_ref("registry.fly.io/app", DIGEST) == f"registry.fly.io/app@{DIGEST}"
    with pytest.raises(ValueError):
        cli.pinned_ref("registry.fly.io/app", "sha256:abc")
    assert cli.split_ref(f"{REF}@{DIGEST}") == ("registry.fly.io/catwalk-dev-images", "ctx-0123456789abcdef", DIGEST)
    assert cli.split_ref("localhost:5000/app") == ("localhost:5000/app", None, None)
    assert cli.split_ref(f"localhost:5000/app@{DIGEST}") == ("localhost:5000/app", None, DIGEST)


@pytest.mark.parametrize("app", ["catwalk-dev-images", "a", "x1-y2"])
def test_repository_is_the_fly_registry_path_of_the_app(app: str):
    assert cli.repository(app) == f"registry.fly.io/{app}"


@pytest.mark.parametrize("app", ["", "Upper", "-lead", "trail-", "a--b", "a/b", "a b", "a" * 64, None])
def test_bad_app_names_are_refused(app):
    with pytest.raises(ValueError, match="not a Fly app name"):
        cli.repository(app)


REAL_OUTPUTS = {
    "no-buildx": (
        "docker: unknown command: docker buildx\n\nRun 'docker --help' for more information",
        "buildx plugin",
    ),
    "no-daemon": (
        "ERROR: Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?",
        "no Docker engine is reachable",
    ),
    "auth": (
        "ERROR: failed to solve: failed to push registry.fly.io/app:t: unexpected status from HEAD request to "
        "https://registry.fly.io/v2/app/blobs/sha256:00: 401 Unauthorized",
        "refused FLY_API_TOKEN",
    ),
    "login": (
        "Error response from daemon: login attempt to https://registry.fly.io/v2/ failed with status: 401 Unauthorized",
        "refused FLY_API_TOKEN",
    ),
    "socket-permission": (
        "ERROR: permission denied while trying to connect to the Docker daemon socket at unix:///var/run/docker.sock: "
        'Head "http://%2Fvar%2Frun%2Fdocker.sock/_ping": dial unix /var/run/docker.sock: connect: permission denied',
        "docker group",
    ),
    "network": (
        'Error response from daemon: Get "https://registry.fly.io/v2/": dial tcp: lookup registry.fly.io: no such host',
        "could not be reached",
    ),
    "quota": ("ERROR: failed to solve: failed to push registry.fly.io/app:t: toomanyrequests: quota exceeded", "quota"),
    "no-app": (
        "ERROR: failed to push registry.fly.io/app:t: name unknown: repository name not known to registry",
        "fly apps create app",
    ),
}


@pytest.mark.parametrize("case", sorted(REAL_OUTPUTS))
def test_failures_are_explained_with_what_to_do_and_docker_words(case: str):
    output, expected = REAL_OUTPUTS[case]
    message = cli.explain_failure("docker buildx build --push", output, repo="registry.fly.io/app")
    assert message.startswith("docker buildx build --push failed: ")
    assert expected in message
    assert output.splitlines()[0] in message  # docker's own words are kept for the user


def test_skippable_failures_name_the_prebuilt_image_escape_hatch():
    for case in ("no-buildx", "no-daemon", "socket-permission"):
        assert "catwalk:image" in cli.explain_failure("build", REAL_OUTPUTS[case][0])


def test_scrub_hides_secrets_and_the_fly_token_from_the_environment(monkeypatch):
    monkeypatch.setenv("FLY_API_TOKEN", "FlyV1 fm2_secretvalue")
    text = "auth FlyV1 fm2_secretvalue failed; other s3cr3t-x"
    assert cli.scrub(text, ["s3cr3t-x"]) == "auth *** failed; other ***"


def test_docker_processes_get_no_fly_token(monkeypatch):
    monkeypatch.setenv("FLY_API_TOKEN", "tok-a")
    monkeypatch.setenv("FLY_ACCESS_TOKEN", "tok-b")
    env = cli.docker_env()
    assert "FLY_API_TOKEN" not in env and "FLY_ACCESS_TOKEN" not in env
    assert env["BUILDX_NO_DEFAULT_ATTESTATIONS"] == "1"


def test_a_missing_docker_binary_says_how_to_install_or_skip(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(cli.ImageBuildError, match=r"`docker` command was not found.*catwalk:image"):
        cli.run(["docker", "buildx", "version"], timeout=10, step="docker buildx")
