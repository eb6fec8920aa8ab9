"""The authorization server's HTTP side, as a process on loopback: its bounds on what a client may send, and
that a request's secrets never reach its log."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.tools.authserver_process import AuthServer, running_authserver

RESOURCE = "http://127.0.0.1:9/mcp"


@pytest.fixture(scope="module")
def server() -> Iterator[AuthServer]:
    with running_authserver([RESOURCE]) as running:
        yield running


def raw(server: AuthServer, data: bytes, wait: float = 5.0) -> bytes:
    port = int(server.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def test_a_body_over_64_kib_is_refused_with_413(server: AuthServer) -> None:
    answer = httpx.post(f"{server.url}/register", content=b"{" + b" " * (65 * 1024) + b"}",
                        headers={"content-type": "application/json"}, timeout=10)  # fmt: skip
    assert answer.status_code == 413


def test_a_request_framed_twice_is_refused(server: AuthServer) -> None:
    answer = raw(server, b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400")


def test_an_unknown_path_is_404_and_a_wrong_method_405(server: AuthServer) -> None:
    assert httpx.get(f"{server.url}/admin", timeout=10).status_code == 404
    assert httpx.get(f"{server.url}/token", timeout=10).status_code == 405


def test_an_idle_connection_is_closed(server: AuthServer) -> None:
    started = time.monotonic()
    assert raw(server, b"", wait=15) == b""  # nothing sent: closed after the keep-alive wait
    assert time.monotonic() - started < 10


def test_the_health_check_answers_and_codes_and_passphrases_stay_out_of_the_log(server: AuthServer) -> None:
    assert httpx.get(f"{server.url}/status", timeout=10).text == "ok\n"
    httpx.post(f"{server.url}/token", data={"grant_type": "authorization_code", "code": "secret-code-value-123",
                                            "client_id": "x", "code_verifier": "v" * 43}, timeout=10)  # fmt: skip
    httpx.post(f"{server.url}/authorize", data={"client_id": "x", "passphrase": "typed-passphrase-456"}, timeout=10)
    log = server.output()
    assert '"POST /token" 400' in log and '"POST /authorize" 400' in log
    assert "secret-code-value-123" not in log and "typed-passphrase-456" not in log and server.passphrase not in log


def test_a_slow_client_metadata_document_holds_up_only_its_own_request() -> None:
    class Slow(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            time.sleep(3)
            body = json.dumps({"client_id": f"http://127.0.0.1:{slow.server_port}{self.path}",
                               "redirect_uris": ["https://claude.ai/cb"]}).encode()  # fmt: skip
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    slow = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=slow.serve_forever, daemon=True).start()
    try:
        with running_authserver([RESOURCE], CATWALK_AS_ALLOW_LOOPBACK_CLIENTS="1") as server:
            client_id = f"http://127.0.0.1:{slow.server_port}/client.json"
            query = {"response_type": "code", "client_id": client_id, "redirect_uri": "https://claude.ai/cb",
                     "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                     "code_challenge_method": "S256", "resource": RESOURCE}  # fmt: skip
            pages: list[httpx.Response] = []
            waiting = threading.Thread(
                target=lambda: pages.append(httpx.get(f"{server.url}/authorize", params=query, timeout=20))
            )
            waiting.start()
            time.sleep(0.5)  # the document is being fetched now
            started = time.monotonic()
            assert httpx.get(f"{server.url}/.well-known/oauth-authorization-server", timeout=10).status_code == 200
            assert httpx.post(f"{server.url}/register", json={"redirect_uris": ["https://claude.ai/cb"]},
                              timeout=10).status_code == 201  # fmt: skip
            assert time.monotonic() - started < 1.5
            waiting.join(20)
            assert pages and pages[0].status_code == 200 and 'name="passphrase"' in pages[0].text
    finally:
        slow.shutdown()
        slow.server_close()
