"""An MCP client in one standard-library file, run inside a container (`docker exec -i … python - < this`).

A container without a network (`--network none`) cannot be reached from outside, so the check runs where
the server is: initialize, tools/list and, if asked, tool calls, over streamable HTTP on loopback. Prints
one JSON object: the tool names and each call's text. Arguments: port, token, then calls as JSON
(`[["tool", {"arg": 1}], …]`).
"""

import http.client
import json
import sys
import time

PORT, TOKEN = int(sys.argv[1]), sys.argv[2]
CALLS = json.loads(sys.argv[3]) if len(sys.argv) > 3 else []
HEADERS = {
    "Authorization": f"Bearer {TOKEN}",
    "Content-Type": "application/json",
    "Accept": "application/json, text/event-stream",
}


def post(message, session=None, timeout=120):
    headers = dict(HEADERS, **({"Mcp-Session-Id": session} if session else {}))
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=timeout)
    conn.request("POST", "/mcp", json.dumps(message), headers)
    response = conn.getresponse()
    body = response.read().decode()
    session = response.getheader("Mcp-Session-Id") or session
    if response.status >= 400:
        raise SystemExit(f"{message.get('method')}: HTTP {response.status}: {body[:500]}")
    if "id" not in message:
        return None, session
    if (response.getheader("Content-Type") or "").startswith("text/event-stream"):
        for line in body.splitlines():
            if line.startswith("data:"):
                data = json.loads(line[5:])
                if data.get("id") == message["id"]:
                    return data, session
        raise SystemExit(f"{message['method']}: no answer in the event stream: {body[:500]}")
    return json.loads(body), session


def main():
    deadline = time.monotonic() + 120
    while True:  # the gateway may still be starting
        try:
            init, session = post(
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "initialize",
                    "params": {
                        "protocolVersion": "2025-06-18",
                        "capabilities": {},
                        "clientInfo": {"name": "probe", "version": "1"},
                    },
                }
            )
            break
        except ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    post({"jsonrpc": "2.0", "method": "notifications/initialized"}, session)
    listed, _ = post({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, session)
    result = {"server": init["result"]["serverInfo"], "tools": [t["name"] for t in listed["result"]["tools"]]}
    result["calls"] = []
    for n, (name, arguments) in enumerate(CALLS, start=3):
        called, _ = post(
            {"jsonrpc": "2.0", "id": n, "method": "tools/call", "params": {"name": name, "arguments": arguments}},
            session,
        )
        content = (called.get("result") or {}).get("content") or []
        text = " ".join(c.get("text", "") for c in content if c.get("type") == "text")
        result["calls"].append({"tool": name, "error": called.get("error"), "text": text})
    print(json.dumps(result))


main()
