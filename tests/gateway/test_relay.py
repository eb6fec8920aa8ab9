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


@pytest.mark.parametrize("method", ["notifications/tools/list_changed", "notifications/message"])
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
    # A server ping is answered here; sampling with no call in flight is refused, saying why.
    assert upstream(hub.from_server(request(3, "ping"))) == [relay.result(3, {})]
    [refusal] = upstream(hub.from_server(request(4, "sampling/createMessage", {})))
    assert refusal["id"] == 4 and refusal["error"]["message"] == (
        "Sampling not supported: the gateway cannot tell which client's call caused it (0 calls in flight)"
    )


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


# --- per-session state on a shared server ------------------------------------------------------------------


def subscribe(hub, session, request_id, uri: str, method: str = "resources/subscribe") -> list:
    return hub.from_client(session, request(request_id, method, {"uri": uri}), f"post-{session.sid}")


def test_resource_subscriptions_are_per_session_and_one_unsubscribe_never_ends_anothers(hub) -> None:
    a, b = hub.open("a"), hub.open("b")
    a.stream, b.stream = "stream-a", "stream-b"
    [first] = upstream(subscribe(hub, a, 1, "x://doc"))  # the server is subscribed once...
    assert first["method"] == "resources/subscribe" and first["params"] == {"uri": "x://doc"}
    assert to_clients(subscribe(hub, b, 1, "x://doc")) == [("post-b", relay.result(1, {}))]  # ...not twice
    updated = {"jsonrpc": "2.0", "method": "notifications/resources/updated", "params": {"uri": "x://doc"}}
    assert to_clients(hub.from_server(updated)) == [("stream-a", updated), ("stream-b", updated)] or to_clients(
        hub.from_server(updated)
    ) == [("stream-b", updated), ("stream-a", updated)]
    # b leaves: a still gets its updates and the server stays subscribed.
    assert to_clients(subscribe(hub, b, 2, "x://doc", "resources/unsubscribe")) == [("post-b", relay.result(2, {}))]
    assert to_clients(hub.from_server(updated)) == [("stream-a", updated)]
    # A session that never subscribed unsubscribing changes nothing upstream either.
    c = hub.open("c")
    assert upstream(subscribe(hub, c, 1, "x://doc", "resources/unsubscribe")) == []
    # The last subscriber's unsubscribe is the server's.
    [last] = upstream(subscribe(hub, a, 3, "x://doc", "resources/unsubscribe"))
    assert last["method"] == "resources/unsubscribe"
    assert to_clients(hub.from_server(updated)) == []


def test_a_session_that_ends_drops_its_subscriptions_and_the_server_is_unsubscribed_when_nobody_is_left(hub) -> None:
    a, b = hub.open("a"), hub.open("b")
    subscribe(hub, a, 1, "x://one")
    subscribe(hub, b, 1, "x://one")
    subscribe(hub, a, 2, "x://two")
    sent = upstream(hub.close("a"))
    # x://one is still b's: only x://two is given up (a's subscribe requests, never answered, are cancelled).
    assert [m["params"] for m in sent if m.get("method") == "resources/unsubscribe"] == [{"uri": "x://two"}]


def call(hub, session, request_id, channel: str = "post") -> int:
    [forwarded] = upstream(hub.from_client(session, request(request_id, "tools/call", {"name": "t"}), channel))
    return forwarded["id"]


def test_a_log_message_goes_on_the_stream_of_the_one_call_in_flight_else_to_everyone(hub) -> None:
    a, b = hub.open("a"), hub.open("b")
    a.stream, b.stream = "stream-a", "stream-b"
    log = {"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": "hi"}}
    call(hub, a, 1, "post-a")
    assert to_clients(hub.from_server(log)) == [("post-a", log)]  # caused by a's call, the only one
    call(hub, b, 1, "post-b")
    assert sorted(to_clients(hub.from_server(log))) == [("stream-a", log), ("stream-b", log)]  # cannot tell


def test_a_stateless_request_gets_log_messages_only_at_the_level_it_asked_for(hub) -> None:
    quiet, chatty = hub.open("q", modern=True), hub.open("c", modern=True)
    chatty.log_level = "warning"
    info = {"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": "i"}}
    error = {"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "error", "data": "e"}}
    upstream_id = call(hub, quiet, 1, "post-q")
    assert hub.from_server(error) == []  # it asked for none
    hub.from_server({"jsonrpc": "2.0", "id": upstream_id, "result": {}})
    call(hub, chatty, 1, "post-c")
    assert hub.from_server(info) == [] and to_clients(hub.from_server(error)) == [("post-c", error)]


def test_a_stateless_requests_answer_says_it_is_complete(hub) -> None:
    session = hub.open("m", modern=True)
    upstream_id = call(hub, session, "r1")
    [(_, answer)] = to_clients(hub.from_server({"jsonrpc": "2.0", "id": upstream_id, "result": {"content": []}}))
    assert answer == {"jsonrpc": "2.0", "id": "r1", "result": {"content": [], "resultType": "complete"}}


def test_sampling_goes_to_the_client_whose_call_caused_it_and_its_answer_back_to_the_server(hub) -> None:
    caller = hub.open("a")
    hub.from_client(caller, request(0, "initialize", {"capabilities": {"sampling": {}}}), "init")
    call(hub, caller, 1, "post-a")
    ask = request(42, "sampling/createMessage", {"messages": []})
    [(channel, asked)] = to_clients(hub.from_server(ask))
    assert channel == "post-a" and asked["method"] == "sampling/createMessage" and asked["id"] != 42
    answer = {"jsonrpc": "2.0", "id": asked["id"], "result": {"role": "assistant"}}
    assert hub.from_client(hub.open("other"), answer, None) == []  # only the client asked can answer
    assert upstream(hub.from_client(caller, answer, None)) == [{**answer, "id": 42}]


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        ("two-calls", "the gateway cannot tell which client's call caused it (2 calls in flight)"),
        ("no-capability", "the calling client did not declare the elicitation capability"),
        ("stateless", "the calling client uses the stateless revision (2026-07-28), which takes no server requests"),
    ],
)
def test_elicitation_is_refused_with_the_reason_when_the_gateway_cannot_route_it(hub, setup: str, reason: str) -> None:
    session = hub.open("a", modern=setup == "stateless")
    if setup != "no-capability":
        session.capabilities = {"elicitation": {}}
    call(hub, session, 1)
    if setup == "two-calls":
        call(hub, hub.open("b"), 1)
    [refusal] = upstream(hub.from_server(request(9, "elicitation/create", {})))
    assert refusal["error"] == {"code": -32600, "message": f"Elicitation not supported: {reason}"}


def test_a_subscriptions_listen_stream_is_acknowledged_and_gets_only_what_it_asked_for(hub) -> None:
    hub.init_result = {**SERVER_INIT, "capabilities": {"tools": {"listChanged": True},
                                                       "resources": {"subscribe": True}}}  # fmt: skip
    session = hub.open("l", modern=True)
    wanted = {"toolsListChanged": True, "promptsListChanged": True, "resourceSubscriptions": ["x://doc"]}
    sends = hub.listen(session, 7, wanted, "listen")
    [(channel, ack)] = to_clients(sends)
    assert channel == "listen" and ack["method"] == "notifications/subscriptions/acknowledged"
    # Prompts: the server cannot say they changed, so it is not agreed.
    assert ack["params"] == {
        "_meta": {"io.modelcontextprotocol/subscriptionId": 7},
        "notifications": {"toolsListChanged": True, "resourceSubscriptions": ["x://doc"]},
    }
    assert [m["method"] for m in upstream(sends)] == ["resources/subscribe"]
    changed = {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}
    [(_, tagged)] = to_clients(hub.from_server(changed))
    assert tagged["params"]["_meta"] == {"io.modelcontextprotocol/subscriptionId": 7}
    assert to_clients(hub.from_server({"jsonrpc": "2.0", "method": "notifications/prompts/list_changed"})) == []
    assert [m["method"] for m in upstream(hub.close("l"))] == ["resources/unsubscribe"]


def test_the_gateway_declares_upstream_only_what_it_can_route() -> None:
    capabilities = relay.initialize_request()["params"]["capabilities"]
    assert set(capabilities) == {"sampling", "elicitation"}  # not roots: asked before any call is in flight
