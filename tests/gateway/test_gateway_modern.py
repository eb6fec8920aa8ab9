"""The stateless revision (2026-07-28) on the gateway's ``/mcp``, beside the handshake revisions, in raw HTTP:
the statuses, headers and bodies that revision specifies (streamable HTTP "Request Metadata", "Server
Validation", "Backward Compatibility"; basic/versioning; server/discover).

The server is tests/fixtures/relay_server.py behind deploy/entrypoint.sh, a handshake-era server like most
published today; the real SDK clients are in test_gateway_eras.py.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import httpx
import pytest

from tests.gateway.test_gateway_relay import ACCEPT, AUTH, gateway, initialize, received_methods, sse_messages

MODERN = "2026-07-28"
ENVELOPE = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "0"},
    "io.modelcontextprotocol/clientCapabilities": {},
}


def modern(
    served, method: str, params: dict | None = None, request_id=1, headers: dict | None = None, meta: dict | None = None
) -> httpx.Response:
    body = {"jsonrpc": "2.0", "id": request_id, "method": method,
            "params": {**(params or {}), "_meta": {**ENVELOPE, **(meta or {})}}}  # fmt: skip
    sent = {**AUTH, **ACCEPT, "MCP-Protocol-Version": MODERN, "Mcp-Method": method}
    if method == "tools/call":
        sent["Mcp-Name"] = str((params or {}).get("name"))
    return httpx.post(served.url(), json=body, headers={**sent, **(headers or {})}, timeout=15)


@pytest.fixture
def served(tmp_path: Path):
    with gateway(tmp_path) as (served, received):
        served.received = received
        yield served


def test_server_discover_is_answered_from_the_servers_initialize_result(served) -> None:
    response = modern(served, "server/discover")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    assert "mcp-session-id" not in response.headers  # the revision has no sessions
    assert response.json() == {
        "jsonrpc": "2.0",
        "id": 1,
        "result": {
            "resultType": "complete",
            "supportedVersions": [MODERN],
            "capabilities": {"tools": {"listChanged": True}, "logging": {}},
            "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "relay-fixture", "version": "0.1.0"}},
            "instructions": "for tests",
            "ttlMs": 0,  # the gateway cannot tell how long the server's answers hold: never served from a cache
            "cacheScope": "private",
        },
    }
    assert "server/discover" not in received_methods(served.received)  # the server was asked once, at start


def test_a_request_is_relayed_without_a_session_its_envelope_taken_off_and_its_answer_complete(served) -> None:
    response = modern(served, "tools/call", {"name": "echo", "arguments": {"text": "hi"}}, request_id="abc",
                      meta={"traceparent": "00-1-2-01"})  # fmt: skip
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    assert response.json() == {"jsonrpc": "2.0", "id": "abc", "result": {
        "content": [{"type": "text", "text": "hi"}], "resultType": "complete"}}  # fmt: skip
    [sent] = [json.loads(line) for line in served.received.read_text().splitlines() if '"tools/call"' in line]
    assert sent["params"]["_meta"] == {"traceparent": "00-1-2-01"}  # the server gets only what is not envelope
    assert sent["id"] != "abc"  # remapped, as every client's


def test_a_list_carries_the_caching_hints_the_revision_requires(served) -> None:
    result = modern(served, "tools/list").json()["result"]
    assert [t["name"] for t in result["tools"]][:2] == ["echo", "slow"]
    assert (result["resultType"], result["ttlMs"], result["cacheScope"]) == ("complete", 0, "private")


def test_progress_makes_the_answer_an_event_stream_of_that_request_only(served) -> None:
    params = {"name": "slow", "arguments": {"steps": 2, "delay": 0.05}}
    response = modern(served, "tools/call", params, meta={"progressToken": "tok"})
    assert response.status_code == 200 and response.headers["content-type"] == "text/event-stream"
    events = sse_messages(response)
    assert [e.get("method", "answer") for e in events] == ["notifications/progress"] * 2 + ["answer"]
    assert {e["params"]["progressToken"] for e in events[:2]} == {"tok"}
    assert events[-1]["result"]["resultType"] == "complete"


@pytest.mark.parametrize(
    ("case", "code", "status"),
    [
        ("no envelope", -32602, 400),
        ("method header differs", -32020, 400),
        ("name header differs", -32020, 400),
        ("version header missing", -32020, 400),
        ("routing header twice", -32020, 400),
        ("unknown method", -32601, 404),
    ],
)
def test_a_bad_request_gets_the_revisions_error_and_status(served, case: str, code: int, status: int) -> None:
    params = {"name": "echo", "arguments": {"text": "x"}}
    if case == "no envelope":
        body = {"jsonrpc": "2.0", "id": 5, "method": "tools/list", "params": {}}
        headers = {**AUTH, **ACCEPT, "MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/list"}
        response = httpx.post(served.url(), json=body, headers=headers, timeout=10)
    elif case == "method header differs":
        response = modern(served, "tools/list", request_id=5, headers={"Mcp-Method": "prompts/list"})
    elif case == "name header differs":
        response = modern(served, "tools/call", params, request_id=5, headers={"Mcp-Name": "delete_everything"})
    elif case == "version header missing":
        body = {"jsonrpc": "2.0", "id": 5, "method": "tools/list", "params": {"_meta": ENVELOPE}}
        response = httpx.post(served.url(), json=body, headers={**AUTH, **ACCEPT, "Mcp-Method": "tools/list"})
    elif case == "routing header twice":
        body = json.dumps({"jsonrpc": "2.0", "id": 5, "method": "tools/list", "params": {"_meta": ENVELOPE}})
        headers = [*AUTH.items(), *ACCEPT.items(), ("MCP-Protocol-Version", MODERN), ("Mcp-Method", "tools/list"),
                   ("Mcp-Method", "tools/list")]  # fmt: skip
        response = httpx.post(served.url(), content=body, headers=headers, timeout=10)
    else:
        response = modern(served, "frobnicate/now", request_id=5)
    assert response.status_code == status, response.text
    assert response.json()["id"] == 5 and response.json()["error"]["code"] == code
    assert "mcp-session-id" not in response.headers


def test_an_unserved_version_gets_400_with_the_supported_list(served) -> None:
    response = modern(served, "tools/list", headers={"MCP-Protocol-Version": "2099-01-01"},
                      meta={"io.modelcontextprotocol/protocolVersion": "2099-01-01"})  # fmt: skip
    assert response.status_code == 400
    assert response.json()["error"] == {"code": -32022, "message": "Unsupported protocol version",
                                        "data": {"supported": [MODERN], "requested": "2099-01-01"}}  # fmt: skip


def test_a_legacy_client_asking_for_the_stateless_revision_gets_the_newest_handshake_one(served) -> None:
    response, sid = initialize(served, version=MODERN)
    assert response.status_code == 200 and sid
    assert sse_messages(response)[0]["result"]["protocolVersion"] == "2025-11-25"


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_get_and_delete_of_the_stateless_revision_get_405(served, method: str) -> None:
    headers = {**AUTH, "Accept": "text/event-stream", "MCP-Protocol-Version": MODERN}
    response = httpx.request(method, served.url(), headers=headers, timeout=10)
    assert response.status_code == 405 and response.headers["allow"] == "POST"


def test_a_notification_is_acknowledged_and_not_relayed(served) -> None:
    body = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}}
    headers = {**AUTH, **ACCEPT, "MCP-Protocol-Version": MODERN, "Mcp-Method": "notifications/cancelled"}
    assert httpx.post(served.url(), json=body, headers=headers, timeout=10).status_code == 202
    assert "notifications/cancelled" not in received_methods(served.received)


def test_both_eras_on_one_url_at_once(served) -> None:
    _, sid = initialize(served)
    legacy = {**AUTH, **ACCEPT, "Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-06-18"}
    call = {"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "o"}}}
    with httpx.Client(timeout=10) as http:
        for _ in range(3):
            old = http.post(served.url(), json=call, headers=legacy)
            new = modern(served, "tools/call", {"name": "echo", "arguments": {"text": "n"}}, request_id=9)
            assert sse_messages(old)[0]["result"]["content"][0]["text"] == "o"
            assert new.json()["result"]["content"][0]["text"] == "n"


def test_closing_the_response_cancels_the_request_upstream(served) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "slow", "arguments": {"steps": 40, "delay": 0.05}, "_meta": ENVELOPE}}  # fmt: skip
    payload = json.dumps(body).encode()
    head = (f"POST /mcp HTTP/1.1\r\nHost: x\r\nAuthorization: {AUTH['Authorization']}\r\n"
            f"Accept: application/json, text/event-stream\r\nContent-Type: application/json\r\n"
            f"MCP-Protocol-Version: {MODERN}\r\nMcp-Method: tools/call\r\nMcp-Name: slow\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n").encode()  # fmt: skip
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as client:
        client.sendall(head + payload)
        time.sleep(0.3)  # the call is in flight
    deadline = time.monotonic() + 10
    while "notifications/cancelled" not in received_methods(served.received):
        assert time.monotonic() < deadline, received_methods(served.received)
        time.sleep(0.05)
    [cancel] = [json.loads(x) for x in served.received.read_text().splitlines() if "notifications/cancelled" in x]
    [call] = [json.loads(x) for x in served.received.read_text().splitlines() if '"slow"' in x]
    assert cancel["params"]["requestId"] == call["id"]


def test_expect_100_continue_is_answered_before_the_body(served) -> None:
    payload = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": ENVELOPE}})
    head = (f"POST /mcp HTTP/1.1\r\nHost: x\r\nAuthorization: {AUTH['Authorization']}\r\n"
            f"Accept: application/json, text/event-stream\r\nContent-Type: application/json\r\n"
            f"MCP-Protocol-Version: {MODERN}\r\nMcp-Method: server/discover\r\nExpect: 100-continue\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n").encode()  # fmt: skip
    with socket.create_connection(("127.0.0.1", served.port), timeout=5) as client:
        client.sendall(head)
        assert client.recv(1024).startswith(b"HTTP/1.1 100 ")  # without it curl waits a second, then sends
        client.sendall(payload.encode())
        answer = b""
        while b"supportedVersions" not in answer:
            answer += client.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200 ")


def test_a_listen_stream_is_acknowledged_then_gets_the_list_changes_it_asked_for(served) -> None:
    body = {"jsonrpc": "2.0", "id": "sub-1", "method": "subscriptions/listen",
            "params": {"notifications": {"toolsListChanged": True}, "_meta": ENVELOPE}}  # fmt: skip
    headers = {**AUTH, **ACCEPT, "MCP-Protocol-Version": MODERN, "Mcp-Method": "subscriptions/listen"}
    with httpx.Client(timeout=10) as http, http.stream("POST", served.url(), json=body, headers=headers) as stream:
        assert stream.status_code == 200 and stream.headers["content-type"] == "text/event-stream"
        lines = stream.iter_lines()
        events = []
        while len(events) < 2:
            line = next(lines)
            if line.startswith("data:"):
                events.append(json.loads(line[5:]))
                if len(events) == 1:  # acknowledged: now another client's call changes the tool list
                    modern(served, "tools/call", {"name": "announce", "arguments": {}}, request_id=2)
    ack, changed = events
    assert ack["method"] == "notifications/subscriptions/acknowledged"
    assert ack["params"] == {"_meta": {"io.modelcontextprotocol/subscriptionId": "sub-1"},
                             "notifications": {"toolsListChanged": True}}  # fmt: skip
    assert changed["method"] == "notifications/tools/list_changed"
    assert changed["params"]["_meta"] == {"io.modelcontextprotocol/subscriptionId": "sub-1"}


def test_a_sessions_request_with_an_unknown_version_is_told_the_handshake_revisions(served) -> None:
    _, sid = initialize(served)
    headers = {**AUTH, **ACCEPT, "Mcp-Session-Id": sid, "MCP-Protocol-Version": "2099-01-01"}
    body = {"jsonrpc": "2.0", "id": 3, "method": "tools/list"}
    response = httpx.post(served.url(), json=body, headers=headers, timeout=10)
    assert response.status_code == 400
    assert "Unsupported protocol version: 2099-01-01" in response.json()["error"]["message"]
    assert "2025-11-25" in response.json()["error"]["message"]
