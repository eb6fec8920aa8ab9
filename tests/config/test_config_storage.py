"""The `volume`, `files` and `deleteVolumes` settings: refused with the field named, warned about when risky."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from components import storage
from components.config import ConfigError, load_stack_file, parse_stack

ROOT = Path(__file__).resolve().parents[2]
MEMORY = "@modelcontextprotocol/server-memory"


def server(**extra) -> dict:
    return {"name": "memory", "package": MEMORY, **extra}


def problems(**extra) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_stack({"servers": [server(**extra)]})
    return [str(p) for p in caught.value.problems]


def test_a_volume_takes_a_path_a_size_in_gb_and_is_encrypted_by_default():
    stack = parse_stack({"servers": [server(volume={"path": "/data", "size": 3, "snapshotRetention": 7})]})
    volume = stack.servers[0].volume
    assert (volume.path, volume.size, volume.encrypted, volume.snapshot_retention) == ("/data", 3, True, 7)
    assert parse_stack({"servers": [server(volume={"path": "/home/app/data"})]}).servers[0].volume.size == 1


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("data", "absolute directory"),
        ("/", "absolute directory"),
        ("/data/", "not a clean path"),
        ("/data/../etc", "not a clean path"),
        ("/usr/local/data", "image's /usr"),
        ("/opt", "image's /opt"),
        ("/tmp", "image's /tmp"),
        ("/home", "working directory"),
        ("/home/app", "working directory"),
        ("/da ta", "letters, digits"),
    ],
)
def test_a_volume_path_that_would_hide_the_image_or_is_not_a_clean_directory_is_refused(path, message):
    [problem] = problems(volume={"path": path})
    assert problem.startswith("server 'memory': volume.path:") and message in problem


@pytest.mark.parametrize(
    ("volume", "field"),
    [
        ({"path": "/data", "size": 0}, "volume.size"),
        ({"path": "/data", "size": 501}, "volume.size"),
        ({"path": "/data", "encrypted": "no"}, "volume.encrypted"),
        ({"path": "/data", "snapshotRetention": 90}, "volume.snapshotRetention"),
        ({"size": 1}, "volume.path"),
    ],
)
def test_volume_size_encryption_and_retention_are_checked(volume, field):
    assert any(p.startswith(f"server 'memory': {field}:") for p in problems(volume=volume))


def test_an_unknown_volume_key_suggests_the_volume_keys():
    [problem] = problems(volume={"path": "/data", "sise": 2})
    assert "volume.sise: unknown field; did you mean 'size'?" in problem


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ([{"path": "a.txt"}], "exactly one of 'content' or 'source'"),
        ([{"path": "a.txt", "content": "x", "source": "a.txt"}], "exactly one"),
        ([{"path": "/etc/passwd", "content": "x"}], "overwrite the image's /etc"),
        ([{"path": "/app/entrypoint.sh", "content": "x"}], "overwrite the image's /app"),
        ([{"path": "../x", "content": "x"}], "not a clean path"),
        ([{"path": "k.pem", "content": "-----BEGIN", "secret": True}], "secret: true needs 'source'"),
        ([{"path": "a.txt", "source": "/etc/shadow"}], "relative to the stack file"),
        ([{"path": "a.txt", "source": "../up.txt"}], "relative to the stack file"),
        ([{"path": "a.txt", "content": "x", "mode": "0600"}], "unreadable to the server"),
        ([{"path": "a.txt", "content": "x", "mode": "rw"}], "octal mode"),
        ([{"path": "a.txt", "content": "x"}, {"path": "/home/app/a.txt", "content": "y"}], "more than once"),
    ],
)
def test_bad_files_are_refused_naming_the_problem(files, message):
    assert any(message in p for p in problems(files=files)), problems(files=files)


def test_a_file_inside_the_volume_is_refused():
    found = problems(volume={"path": "/data"}, files=[{"path": "/data/seed.json", "content": "{}"}])
    assert any("inside the volume (/data)" in p for p in found), found


def test_delete_volumes_takes_a_list_its_json_text_or_comma_separated_names():
    for value in (["memory", "git"], '["memory", "git"]', "memory, git"):
        assert parse_stack({"deleteVolumes": value}).delete_volumes == ["memory", "git"]
    with pytest.raises(ConfigError, match="deleteVolumes"):
        parse_stack({"deleteVolumes": ["Not A Name"]})


def test_files_render_to_fly_files_with_secret_contents_only_in_secrets():
    stack = parse_stack(
        {
            "servers": [
                server(
                    files=[
                        {"path": "panda.config.ts", "content": "export default {}"},
                        {"path": "/srv/key.pem", "source": "key.pem", "secret": True},
                    ]
                )
            ]
        }
    )
    entries, secrets = storage.render_files(stack.servers[0].files, {0: b"export default {}", 1: b"KEY"})
    plain, secret = entries
    assert plain == {
        "guest_path": "/home/app/panda.config.ts",
        "mode": 0o644,
        "raw_value": base64.b64encode(b"export default {}").decode(),
    }
    assert secret == {
        "guest_path": "/srv/key.pem",
        "mode": 0o644,
        "secret_name": storage.secret_file_name("/srv/key.pem"),
    }
    assert secrets == {secret["secret_name"]: base64.b64encode(b"KEY").decode()}
    # A config that Pulumi encrypted as a whole keeps every file's contents out of the machine config.
    entries, secrets = storage.render_files(stack.servers[0].files, {0: b"a", 1: b"b"}, all_secret=True)
    assert all("raw_value" not in e for e in entries) and len(secrets) == 2


def test_sources_are_read_next_to_the_stack_file_and_problems_name_the_file(tmp_path):
    (tmp_path / "panda.config.ts").write_text("export default {}")
    (tmp_path / "big.bin").write_bytes(b"x" * (storage.MAX_FILE_BYTES + 1))
    stack = parse_stack(
        {
            "servers": [
                server(
                    files=[
                        {"path": "panda.config.ts", "source": "panda.config.ts"},
                        {"path": "missing.txt", "source": "missing.txt"},
                        {"path": "big.bin", "source": "big.bin"},
                    ]
                )
            ]
        }
    )
    contents, found = storage.read_sources(stack.servers, tmp_path)
    assert contents["memory"][0] == b"export default {}"
    assert [(f, e.split(" ")[0]) for _, f, e in found] == [
        ("files[1].source", "'missing.txt'"),
        ("files[2].source", "'big.bin'"),
    ]
    assert "cannot be read" in found[0][2] and "the limit is" in found[1][2]


def warnings_of(**extra) -> list[tuple[str, str]]:
    return storage.warnings(parse_stack({"servers": [server(**extra)]}).servers[0])


def test_validate_warns_when_machines_would_each_keep_their_own_copy_of_the_data():
    [(field, warning)] = warnings_of(count=2, volume={"path": "/data"}, env={"MEMORY_FILE_PATH": "/data/m.json"})
    assert field == "count" and "own copy" in warning


def test_validate_warns_about_an_env_path_outside_the_volume_but_not_about_image_paths():
    found = warnings_of(
        volume={"path": "/data"},
        env={"MEMORY_FILE_PATH": "/tmp/memory.json", "CHROME": "/usr/bin/chromium", "LOG_LEVEL": "info"},
    )
    assert [f for f, _ in found] == ["env.MEMORY_FILE_PATH"]
    assert "outside the volume (/data)" in found[0][1] and "lost when the machine stops" in found[0][1]


def test_validate_tells_where_server_memory_must_keep_its_graph():
    [(field, warning)] = warnings_of(volume={"path": "/data"})
    assert field == "env" and "MEMORY_FILE_PATH: /data/memory.json" in warning
    assert warnings_of(volume={"path": "/data"}, env={"MEMORY_FILE_PATH": "/data/memory.json"}) == []
    assert warnings_of(env={"MEMORY_FILE_PATH": "/tmp/memory.json"}) == [], "no volume, nothing to compare against"


def test_validate_cli_prints_warnings_and_reads_sources_next_to_the_stack_file(tmp_path):
    path = tmp_path / "Pulumi.dev.yaml"
    servers = [server(count=2, volume={"path": "/data"}, files=[{"path": "seed.json", "source": "seed.json"}])]
    path.write_text(yaml.safe_dump({"config": {"catwalk:servers": servers}}))
    with pytest.raises(ConfigError, match=r"files\[0\].source: 'seed.json' cannot be read"):
        load_stack_file(path)
    (tmp_path / "seed.json").write_text("{}")
    run = subprocess.run(
        [sys.executable, "-m", "infra.cli", "validate", str(path)], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    assert "valid: 1 server(s)" in run.stdout
    assert "warning: server 'memory': count:" in run.stderr
    assert "warning: server 'memory': env: @modelcontextprotocol/server-memory keeps its data" in run.stderr
