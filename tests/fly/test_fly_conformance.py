"""The emulator cannot drift from Fly: every request the client sends and every answer the emulator gives
in a scripted session is validated against tests/fixtures/fly/machines-openapi.json with openapi-core."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import requests
from openapi_core import OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse
from openapi_schema_validator import OAS30Validator

from components.fly import FlyClient, FlyConflict, FlyNotFound
from tests.tools.fly_emulator.fixture import running_emulator

SPEC_PATH = Path(__file__).resolve().parents[1] / "fixtures" / "fly" / "machines-openapi.json"

CONFIG = {
    "image": "registry.fly.io/catwalk:deployment-1",
    "env": {"MCP_RUNTIME": "npm", "MCP_PACKAGE": "@modelcontextprotocol/server-memory"},
    "metadata": {"catwalk_server": "memory", "catwalk_stack": "dev"},
    "guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 512},
    "services": [
        {
            "protocol": "tcp",
            "internal_port": 8080,
            "autostop": "stop",
            "ports": [{"port": 443, "handlers": ["tls", "http"]}],
        }
    ],
}


def load_spec(base_url: str) -> tuple[OpenAPI, dict[str, Any]]:
    """The official spec, served from the emulator's URL.

    Three normalisations. A response with ``"content": {}`` means "no body" in OpenAPI 3, but openapi-core
    demands a body whenever the key exists; those answers are checked to be empty by ``check_pair`` instead.
    And the secrets update body is described as "values to set, or nil to unset" (fly-go sends
    ``map[string]*string``) while its schema forgot ``nullable``; the schema is given the nullable it describes.
    And ``fly.MachineService.autostop`` is a string enum whose description says responses "continue to use
    booleans for "off" and "stop""; it is allowed the booleans it describes.
    """
    spec = json.loads(SPEC_PATH.read_text())
    raw = copy.deepcopy(spec)
    spec["servers"] = [{"url": base_url}]
    values = spec["components"]["schemas"]["AppSecretsUpdateRequest"]["properties"]["values"]
    assert "nil to unset" in spec["paths"]["/v1/apps/{app_name}/secrets"]["post"]["requestBody"]["description"]
    values["additionalProperties"] = {**values["additionalProperties"], "nullable": True}
    service = spec["components"]["schemas"]["fly.MachineService"]["properties"]
    assert "booleans" in service["autostop"]["description"]
    service["autostop"] = {"anyOf": [service["autostop"], {"type": "boolean"}]}
    for ops in spec["paths"].values():
        for op in ops.values():
            for resp in (op.get("responses") or {}).values() if isinstance(op, dict) else ():
                if resp.get("content") == {}:
                    del resp["content"]
    return OpenAPI.from_dict(spec), raw


def operation(raw: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    parts = path.strip("/").split("/")
    for template, ops in raw["paths"].items():
        tparts = template.strip("/").split("/")
        same_shape = len(tparts) == len(parts) and all(
            t.startswith("{") or t == p for t, p in zip(tparts, parts, strict=True)
        )
        if same_shape and method.lower() in ops:
            return ops[method.lower()]
    raise AssertionError(f"{method} {path} is not in the Fly spec")


@pytest.fixture(scope="module")
def session_log():
    """Run the scripted session once; yield the (response, openapi, raw spec) it produced."""
    with running_emulator() as emu:
        openapi, raw = load_spec(emu.base_url)
        responses: list[requests.Response] = []
        http = requests.Session()
        http.hooks["response"].append(lambda r, *a, **k: responses.append(r))
        client = FlyClient(emu.base_url, emu.token, mutation_rate=0, backoff=0.001, session=http)

        client.create_app("cw-conf", "personal")
        with pytest.raises(FlyConflict):  # another org's app: 422 name_taken, not adoptable
            emu.reserve_app_name("cw-taken")
            client.create_app("cw-taken", "personal")
        client.get_app("cw-conf")
        version = client.set_secrets("cw-conf", {"MCP_AUTH_TOKEN": "s3cr3t-value", "OTHER": "x"})
        client.list_secrets("cw-conf")
        m = client.create_machine("cw-conf", "memory-iad-0", "iad", CONFIG, min_secrets_version=version)
        client.get_machine("cw-conf", m.id)
        client.list_machines("cw-conf", metadata={"catwalk_server": "memory"})
        client.wait_machine("cw-conf", m.id, "started", instance_id=m.version, deadline_s=10)
        updated = client.update_machine(
            "cw-conf", m.id, {**CONFIG, "env": {**CONFIG["env"], "X": "1"}}, current_version=m.version
        )
        with pytest.raises(FlyConflict):  # stale current_version: 409
            client.update_machine("cw-conf", m.id, CONFIG, current_version=m.version)
        client.wait_machine("cw-conf", m.id, "started", instance_id=updated.version, deadline_s=10)
        lease = client.acquire_lease("cw-conf", m.id, ttl=30)
        client.get_lease("cw-conf", m.id)
        client.release_lease("cw-conf", m.id, lease.nonce or "")
        client.stop_machine("cw-conf", m.id)
        client.wait_machine("cw-conf", m.id, "stopped", deadline_s=10)
        client.start_machine("cw-conf", m.id)
        client.wait_machine("cw-conf", m.id, "started", deadline_s=10)
        ip = client.allocate_ip("cw-conf", "shared_v4")
        client.allocate_ip("cw-conf", "private_v6")
        client.list_ips("cw-conf")
        client.release_ip("cw-conf", ip.ip or "")
        client.unset_secrets("cw-conf", ["OTHER"])
        # A volume mounted by a machine that also gets files (one inline, one from an app secret).
        volume = client.create_volume("cw-conf", "data_iad_0", "iad", 1, snapshot_retention=7)
        client.list_volumes("cw-conf")
        client.list_org_volumes("personal", page_size=1)
        client.get_volume("cw-conf", volume.id)
        client.update_volume("cw-conf", volume.id, snapshot_retention=10)
        client.extend_volume("cw-conf", volume.id, 2)
        client.create_snapshot("cw-conf", volume.id)
        client.list_snapshots("cw-conf", volume.id)
        client.set_secrets("cw-conf", {"CATWALK_FILE_1": "c2VjcmV0"})
        stateful = client.create_machine(
            "cw-conf",
            "memory-iad-1",
            "iad",
            {
                **CONFIG,
                "mounts": [{"volume": volume.id, "path": "/data"}],
                "processes": [{"user": "root"}],
                "files": [
                    {"guest_path": "/home/app/a.json", "raw_value": "e30=", "mode": 0o644},
                    {"guest_path": "/home/app/b.key", "secret_name": "CATWALK_FILE_1"},
                ],
            },
        )
        with pytest.raises(FlyConflict):  # a volume held by a live machine cannot be destroyed
            client.delete_volume("cw-conf", volume.id)
        client.delete_machine("cw-conf", stateful.id, force=True)
        client.delete_volume("cw-conf", volume.id)
        client.delete_machine("cw-conf", m.id, force=True)
        client.wait_machine("cw-conf", m.id, "destroyed", deadline_s=10)
        client.list_machines("cw-conf", include_deleted=True)
        # A request the spec forbids (wait's state is an enum) gets the spec's 400; sent outside the hook
        # because the request itself is invalid on purpose.
        bad_wait = requests.get(
            f"{emu.base_url}/v1/apps/cw-conf/machines/{m.id}/wait",
            params={"state": "sleeping"},
            headers={"Authorization": f"Bearer {emu.token}"},
            timeout=10,
        )
        assert bad_wait.status_code == 400
        openapi.validate_response(RequestsOpenAPIRequest(bad_wait.request), RequestsOpenAPIResponse(bad_wait))
        responses.append(bad_wait)
        with pytest.raises(FlyNotFound):
            client.get_machine("cw-conf", "0000000000")
        client.list_apps("personal")
        client.delete_app("cw-conf")
        yield responses, openapi, raw


def check_pair(openapi: OpenAPI, raw: dict[str, Any], resp: requests.Response) -> str:
    """Validate one exchange; return how (``spec`` for a response the spec lists, ``error`` otherwise).

    Requests are validated too (the client must speak the spec), except those answered 400 on purpose.
    """
    req = RequestsOpenAPIRequest(resp.request)
    if resp.status_code != 400:
        openapi.validate_request(req)
    op = operation(raw, resp.request.method or "", req.path)
    listed = op["responses"].get(str(resp.status_code))
    if listed is None:
        # Statuses Fly answers but the spec does not list per operation (401, 404, 408, 412): ErrorResponse.
        assert resp.status_code >= 400, f"{resp.status_code} for {resp.request.method} {req.path} is not in the spec"
        OAS30Validator(raw["components"]["schemas"]["ErrorResponse"]).validate(resp.json())
        return "error"
    if listed.get("content") == {}:
        assert resp.content == b"", f"{resp.request.method} {req.path}: the spec says no body, got {resp.text!r}"
    openapi.validate_response(req, RequestsOpenAPIResponse(resp))
    return "spec"


def test_every_exchange_of_the_scripted_session_matches_the_fly_spec(session_log):
    responses, openapi, raw = session_log
    failures = []
    for resp in responses:
        try:
            check_pair(openapi, raw, resp)
        except Exception as exc:  # collect all, so one run shows every drift
            failures.append(f"{resp.request.method} {resp.request.path_url} -> {resp.status_code}: {exc}")
    assert not failures, "\n".join(failures)


def test_the_scripted_session_covers_every_call_the_acceptance_names(session_log):
    responses, openapi, raw = session_log
    covered = set()
    for resp in responses:
        if check_pair(openapi, raw, resp) == "spec":
            covered.add(operation(raw, resp.request.method or "", resp.request.path_url.split("?")[0])["operationId"])
    wanted = {
        "Apps_create",
        "Apps_show",
        "Apps_delete",
        "Apps_list",
        "Machines_create",
        "Machines_show",
        "Machines_list",
        "Machines_update",
        "Machines_wait",
        "Machines_stop",
        "Machines_start",
        "Machines_delete",
        "Machines_create_lease",
        "Machines_show_lease",
        "Machines_release_lease",
        "Secrets_list",
        "Secrets_update",
        "App_IPAssignments_list",
        "App_IPAssignments_create",
        "App_IPAssignments_delete",
        "Volumes_list",
        "Volumes_create",
        "Volumes_get_by_id",
        "Volumes_update",
        "Volume_delete",
        "Volumes_extend",
        "Volumes_list_snapshots",
        "createVolumeSnapshot",
        "Volumes_org_list",
    }
    assert wanted <= covered, f"not validated against the spec: {sorted(wanted - covered)}"
    statuses = {
        (operation(raw, r.request.method or "", r.request.path_url.split("?")[0])["operationId"], r.status_code)
        for r in responses
    }
    assert {("Apps_create", 422), ("Machines_update", 409), ("Machines_wait", 400), ("Volume_delete", 409)} <= statuses


def test_an_emulator_answer_that_breaks_the_spec_is_caught(session_log):
    """The check itself can fail: a Machine whose ``state`` is a number is refused."""
    responses, openapi, raw = session_log
    base = responses[0].url.split("/v1/")[0]
    bad = requests.Response()
    bad.status_code, bad._content = 200, json.dumps({"id": "m1", "state": 5}).encode()
    bad.headers["Content-Type"] = "application/json"
    bad.request = requests.Request("GET", base + "/v1/apps/x/machines/m1").prepare()
    with pytest.raises(Exception) as caught:
        check_pair(openapi, raw, bad)
    assert "5 is not of type 'string'" in repr(caught.value.__cause__ or caught.value.__context__ or caught.value)
