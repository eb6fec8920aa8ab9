"""The gateway's multiplexing (catwalk_runtime.relay), pure: many client sessions onto one upstream server."""

from __future__ import annotations

import pytest

from catwalk_runtime import relay

SERVER_INIT = {
    "protocolVersion": "2025-11-25",
    "capabilities": {"tools": {"listChanged": True}},
    "serverInfo": {"name": "up", "version": "1.2.3"},
    "instructions": "be nice",
}


def request(request_id, method: str, params: dict | None = None) -> dict:
    message = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        message["params"] = params
    return message


def upstream(sends: list) -> list[dict]:
    return [s.message for s in sends if s.channel is None]


def to_clients(sends: list) -> list[tuple[object, dict]]:
    return [(s.channel, s.message) for s in sends if s.channel is not None]


@pytest.fixture
def hub():
    return relay.Relay(SERVER_INIT)


def test_initialize_is_answered_from_the_servers_result_with_the_negotiated_version(hub) -> None:
    session = hub.open("a")
    sends = hub.from_client(session, request(7, "initialize", {"protocolVersion": "2025-06-18"}), "chan")
    assert upstream(sends) == []  # the server was initialized once, by the gateway
    [(channel, answer)] = to_clients(sends)
    assert channel == "chan" and answer["id"] == 7
    assert answer["result"] == {**SERVER_INIT, "protocolVersion": "2025-06-18"}


@pytest.mark.parametrize(
    ("client", "server", "answered"),
    [
        ("2025-11-25", "2025-11-25", "2025-11-25"),
        ("2024-11-05", "2025-06-18", "2024-11-05"),  # older revision: the client's own
        ("2025-11-25", "2025-03-26", "2025-03-26"),  # newer than the server speaks: the server's
        ("2099-01-01", "2025-06-18", "2025-06-18"),  # unknown: the server's
        (None, "2025-06-18", "2025-06-18"),
    ],
)
def test_version_negotiation_gives_the_clients_version_only_when_the_server_speaks_it(client, server, answered):
    assert relay.negotiate(client, server) == answered


def test_two_sessions_with_the_same_ids_get_their_own_answers_back(hub) -> None:
    a, b = hub.open("a"), hub.open("b")
    [to_a] = upstream(hub.from_client(a, request(1, "tools/call", {"name": "x"}), "chan-a"))
    [to_b] = upstream(hub.from_client(b, request(1, "tools/call", {"name": "y"}), "chan-b"))
    assert to_a["id"] != to_b["id"]  # unique upstream ids
    assert to_a["params"] == {"name": "x"} and to_b["params"] == {"name": "y"}  # otherwise unchanged
    # The server answers out of order; each answer reaches its own session with the client's id.
    answer_b = {"jsonrpc": "2.0", "id": to_b["id"], "result": {"v": "b", "extra": {"unknown": [1]}}}
    answer_a = {"jsonrpc": "2.0", "id": to_a["id"], "error": {"code": -1, "message": "no"}}
    assert to_clients(hub.from_server(answer_b)) == [("chan-b", {**answer_b, "id": 1})]
    assert to_clients(hub.from_server(answer_a)) == [("chan-a", {**answer_a, "id": 1})]
    assert hub.from_server(answer_a) == []  # answered once only
    assert hub.in_flight() == 0


def test_string_ids_and_unknown_fields_pass_through_unchanged(hub) -> None:
    session = hub.open("a")
    message = request("req-1", "tools/call", {"name": "x", "newField": {"a": [1, 2.5]}})
    message["x-top"] = True
    [forwarded] = upstream(hub.from_client(session, message, "c"))
    assert {k: v for k, v in forwarded.items() if k != "id"} == {k: v for k, v in message.items() if k != "id"}
    answer = {"jsonrpc": "2.0", "id": forwarded["id"], "result": {}, "x-top": 1}
    assert to_clients(hub.from_server(answer)) == [("c", {**answer, "id": "req-1"})]


def test_progress_reaches_only_the_requester_with_its_own_token(hub) -> None:
    a, b = hub.open("a"), hub.open("b")
    a.stream, b.stream = "stream-a", "stream-b"
    params = {"name": "slow", "_meta": {"progressToken": 5, "other": "kept"}}
    [to_a] = upstream(hub.from_client(a, request(1, "tools/call", params), "post-a"))
    [to_b] = upstream(hub.from_client(b, request(1, "tools/call", params), "post-b"))
    token_a, token_b = to_a["params"]["_meta"]["progressToken"], to_b["params"]["_meta"]["progressToken"]
    assert token_a != token_b and to_a["params"]["_meta"]["other"] == "kept"
    progress = {"jsonrpc": "2.0", "method": "notifications/progress",
                "params": {"progressToken": token_b, "progress": 1, "total": 2, "message": "half"}}  # fmt: skip
    [(channel, note)] = to_clients(hub.from_server(progress))
    assert channel == "post-b" and note["params"] == {**progress["params"], "progressToken": 5}
    hub.from_server({"jsonrpc": "2.0", "id": to_b["id"], "result": {}})
    assert hub.from_server(progress) == []  # after the answer, the token is gone


def test_cancellation_names_the_upstream_request_and_drops_its_late_answer(hub) -> None:
    a, b = hub.open("a"), hub.open("b")
    [to_a] = upstream(hub.from_client(a, request(9, "tools/call", {"name": "x"}), "post-a"))
    cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 9, "reason": "bored"}}
    assert hub.from_client(b, cancel, None) == []  # another session cannot cancel a's request
    sends = hub.from_client(a, cancel, None)
    [forwarded] = upstream(sends)
    assert forwarded["params"] == {"requestId": to_a["id"], "reason": "bored"}
    assert to_clients(sends) == [("post-a", None)]  # post-a will get no answer for it: it need not wait
    assert hub.from_server({"jsonrpc": "2.0", "id": to_a["id"], "result": {}}) == []
    assert hub.from_client(a, cancel, None) == []  # nothing left to cancel


def test_a_session_that_ends_cancels_its_requests_in_flight(hub) -> None:
    a = hub.open("a")
    [to_a] = upstream(hub.from_client(a, request(1, "tools/call", {"name": "x"}), "post-a"))
    sends = hub.close("a")
    [cancel] = upstream(sends)
    assert cancel["method"] == "notifications/cancelled" and cancel["params"]["requestId"] == to_a["id"]
    assert to_clients(sends) == [("post-a", None)]
    assert "a" not in hub.sessions and hub.from_server({"jsonrpc": "2.0", "id": to_a["id"], "result": {}}) == []


@pytest.mark.parametrize(
    "method", ["notifications/tools/list_changed", "notifications/resources/updated", "notifications/message"]
)
def test_notifications_for_everyone_reach_every_open_stream(hub, method: str) -> None:
    for sid in ("a", "b", "c"):
        hub.open(sid)
    hub.sessions["a"].stream, hub.sessions["b"].stream = "stream-a", "stream-b"  # c has none open
    note = {"jsonrpc": "2.0", "method": method, "params": {"uri": "x://y"}}
    assert to_clients(hub.from_server(note)) == [("stream-a", note), ("stream-b", note)]


def test_gateway_answers_pings_and_does_not_forward_initialized_twice(hub) -> None:
    session = hub.open("a")
    assert to_clients(hub.from_client(session, request("p", "ping"), "c")) == [("c", relay.result("p", {}))]
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert hub.from_client(session, initialized, None) == []
    other = {"jsonrpc": "2.0", "method": "notifications/roots/list_changed"}
    assert upstream(hub.from_client(session, other, None)) == [other]
    # A server ping is answered here; sampling is refused as mcp-proxy's client session refused it.
    assert upstream(hub.from_server(request(3, "ping"))) == [relay.result(3, {})]
    [refusal] = upstream(hub.from_server(request(4, "sampling/createMessage", {})))
    assert refusal["id"] == 4 and refusal["error"]["message"] == "Sampling not supported"


@pytest.mark.parametrize(
    ("message", "what"),
    [
        ({"jsonrpc": "2.0", "id": 1, "method": "x"}, "request"),
        ({"jsonrpc": "2.0", "method": "x"}, "notification"),
        ({"jsonrpc": "2.0", "id": 1, "result": {}}, "response"),
        ({"jsonrpc": "2.0", "id": None, "error": {"code": 1, "message": "m"}}, "response"),
        ({"jsonrpc": "1.0", "id": 1, "method": "x"}, None),
        ({"jsonrpc": "2.0", "id": True, "method": "x"}, None),
        ({"jsonrpc": "2.0", "id": 1, "result": {}, "error": {}}, None),
        ([], None),
        ("text", None),
    ],
)
def test_kind_tells_requests_notifications_and_responses_from_garbage(message, what) -> None:
    assert relay.kind(message) == what


def test_messages_are_encoded_as_utf8_json_even_with_a_lone_surrogate() -> None:
    assert relay.encode({"text": "é ✓"}) == '{"text":"é ✓"}'.encode()
    lone = relay.encode({"text": "\ud800"})  # valid JSON (an escape), which raw UTF-8 could not carry
    assert lone == b'{"text":"\\ud800"}'


def test_abandon_answers_every_request_in_flight_with_an_error_on_its_own_channel(hub) -> None:
    a, b = hub.open("a"), hub.open("b")
    hub.from_client(a, request("x", "tools/call", {"name": "x"}), "post-a")
    hub.from_client(b, request(1, "tools/call", {"name": "y"}), "post-b")
    sends = hub.abandon("the MCP server process exited with code 3")
    assert upstream(sends) == []
    assert sorted(to_clients(sends), key=lambda s: s[0]) == [
        ("post-a", relay.error("x", relay.CONNECTION_CLOSED, "the MCP server process exited with code 3")),
        ("post-b", relay.error(1, relay.CONNECTION_CLOSED, "the MCP server process exited with code 3")),
    ]
    assert hub.in_flight() == 0 and a.pending == {} and hub.abandon("again") == []


def test_server_output_is_split_into_lines_across_chunks_and_a_line_past_the_limit_is_skipped() -> None:
    lines = relay.Lines(limit=10)
    assert lines.feed(b'{"a":1}\n{"b"') == [b'{"a":1}']
    assert lines.feed(b":2}") == []
    assert lines.feed(b"\n\n") == [b'{"b":2}', b""]
    # A line longer than the limit is not kept whole in memory: it comes out once, as its two ends.
    assert lines.feed(b"h" * 8) == []
    assert lines.feed(b"x" * 8) == []
    [skipped, after] = lines.feed(b"x" * 7 + b't\n{"c":3}\n')
    assert (skipped.head, skipped.tail[-2:], after) == (b"h" * 8 + b"x" * 8, b"xt", b'{"c":3}')
    [whole] = lines.feed(b"y" * 300 + b"z" * 300 + b"\n")  # past the limit in one chunk
    assert (whole.head, whole.tail) == (b"y" * 256, b"z" * 256)


@pytest.mark.parametrize(
    "answer",
    [
        b'{"jsonrpc": "2.0", "id": UP, "result": {"content": [{"type": "text", "text": "PAD"}]}}',  # Python SDK
        b'{"result":{"content":[{"type":"text","text":"PAD"}]},"jsonrpc":"2.0","id":UP}',  # TypeScript SDK
    ],
)
def test_an_answer_too_long_to_relay_reaches_its_client_as_an_error(hub, answer: bytes) -> None:
    session = hub.open("a")
    [forwarded] = upstream(hub.from_client(session, request("mine", "tools/call", {"name": "x"}), "post-a"))
    lines = relay.Lines(limit=1000)
    line = answer.replace(b"UP", str(forwarded["id"]).encode()).replace(b"PAD", b"x" * 5000)
    [too_long] = [*lines.feed(line[:3000]), *lines.feed(line[3000:] + b"\n")]
    [(channel, message)] = to_clients(hub.too_long(too_long))
    assert channel == "post-a" and message["id"] == "mine" and "MiB limit" in message["error"]["message"]
    assert hub.in_flight() == 0


def test_a_request_reusing_an_id_still_in_flight_is_refused_and_the_first_keeps_its_answer(hub) -> None:
    session = hub.open("a")
    [first] = upstream(hub.from_client(session, request(1, "tools/call", {"name": "x"}), "post-1"))
    sends = hub.from_client(session, request(1, "tools/call", {"name": "y"}), "post-2")
    assert upstream(sends) == []  # never reaches the server
    [(channel, refusal)] = to_clients(sends)
    assert channel == "post-2" and refusal["id"] == 1 and refusal["error"]["code"] == relay.INVALID_REQUEST
    cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}}
    [forwarded] = upstream(hub.from_client(session, cancel, None))
    assert forwarded["params"]["requestId"] == first["id"]  # the first request is still the one id 1 names
    assert hub.in_flight() == 0 and session.pending == {}
