"""The whole flow a web connector (claude.ai, ChatGPT) goes through, against a real gateway in OAuth mode and
the built-in authorization server, both as local processes: a bare request gets 401, the challenge leads to
the Protected Resource Metadata, that to the authorization server's metadata; the client registers (RFC
7591) or names its metadata document (served here over loopback https), the operator consents with the
passphrase, the code becomes tokens, and a tool is called through the gateway.

The SDK's own OAuth client (``mcp`` 1.x ``OAuthClientProvider``, from its pinned environment) does the
dance in the ``network`` tests; the others walk the same steps by hand, so they run offline too.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import hashlib
import html
import ipaddress
import json
import os
import re
import secrets
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.tools import sdk_clients
from tests.tools.authserver_process import AuthServer, running_authserver
from tests.tools.entrypoint_env import ROOT, free_port

RELAY_SERVER = ROOT / "tests" / "fixtures" / "relay_server.py"
OAUTH_CLIENT = sdk_clients.CLIENTS / "oauth_sdk_client.py"
STATIC_TOKEN = "static-token-for-cli-clients"
OTHER_RESOURCE = "http://127.0.0.1:9/mcp"  # a second server of the stack, not running
HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')
REDIRECT = "http://127.0.0.1:33418/callback"


# --- a loopback https server for client metadata documents, with a CA made here ---------------------------


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_tls(directory: Path) -> tuple[Path, ssl.SSLContext]:
    """A CA (its PEM written for the authorization server to trust) and a server context for 127.0.0.1."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        x509.CertificateBuilder().subject_name(_name("catwalk test CA")).issuer_name(_name("catwalk test CA"))
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(hours=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    leaf = (
        x509.CertificateBuilder().subject_name(_name("127.0.0.1")).issuer_name(ca.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(hours=2))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    ca_path, cert_path, key_path = directory / "ca.pem", directory / "leaf.pem", directory / "leaf.key"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return ca_path, context


@dataclass
class Documents:
    base: str
    ca: Path
    served: dict[str, Any]
    fetches: list[str]

    def url(self, name: str) -> str:
        return f"{self.base}/clients/{name}.json"


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Documents]:
    ca, context = make_tls(tmp_path_factory.mktemp("tls"))
    served: dict[str, Any] = {}
    fetches: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fetches.append(self.path)
            document = served.get(self.path)
            body = json.dumps(document).encode() if document is not None else b"{}"
            self.send_response(200 if document is not None else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield Documents(f"https://127.0.0.1:{server.server_port}", ca, served, fetches)
    finally:
        server.shutdown()
        server.server_close()


# --- the gateway and the authorization server -----------------------------------------------------------


@dataclass
class Stack:
    mcp: str  # the gateway's /mcp: the resource tokens must be for
    auth: AuthServer
    gateway: subprocess.Popen[bytes]
    gateway_log: Path


@contextlib.contextmanager
def gateway(port: int, issuer: str, log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MCP_", "CATWALK_AS_"))}
    env.update({"MCP_AUTH_TOKEN": STATIC_TOKEN, "MCP_AUTH_MODE": "oauth", "MCP_OAUTH_ISSUER": issuer,
                "MCP_OAUTH_RESOURCE": f"http://127.0.0.1:{port}/mcp", "MCP_OAUTH_SCOPES": "mcp"})  # fmt: skip
    argv = [sys.executable, "-m", "catwalk_runtime.serve", "--runtime", "custom", "--port", str(port),
            "--host", "127.0.0.1", "--", sys.executable, str(RELAY_SERVER)]  # fmt: skip
    with log_path.open("wb") as sink:
        process = subprocess.Popen(argv, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/status", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, log_path.read_text(errors="replace")
            time.sleep(0.05)
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(10)


@pytest.fixture(scope="module")
def stack(documents: Documents) -> Iterator[Stack]:
    port = free_port()
    mcp = f"http://127.0.0.1:{port}/mcp"
    extra = {"SSL_CERT_FILE": str(documents.ca), "CATWALK_AS_ALLOW_LOOPBACK_CLIENTS": "1"}
    with tempfile.TemporaryDirectory() as work, running_authserver([mcp, OTHER_RESOURCE], **extra) as auth:
        log_path = Path(work) / "gateway.log"
        with gateway(port, auth.url, log_path) as process:
            yield Stack(mcp, auth, process, log_path)


def initialize(url: str, token: str) -> httpx.Response:
    body = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}  # fmt: skip
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"}
    return httpx.post(url, json=body, headers=headers, timeout=10)


# --- by hand: every step a connector takes --------------------------------------------------------------


def discover(stack: Stack) -> dict[str, Any]:
    """From a bare request to the authorization server's metadata, as a connector finds its way."""
    bare = httpx.post(stack.mcp, json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, timeout=10)
    assert bare.status_code == 401
    challenge = bare.headers["www-authenticate"]
    prm_url = re.search(r'resource_metadata="([^"]+)"', challenge)[1]  # type: ignore[index]
    prm = httpx.get(prm_url, timeout=10).json()
    assert prm["resource"] == stack.mcp and prm["authorization_servers"] == [stack.auth.url]
    return httpx.get(prm["authorization_servers"][0] + "/.well-known/oauth-authorization-server", timeout=10).json()


def tokens_by_hand(stack: Stack, resource: str) -> dict[str, Any]:
    metadata = discover(stack)
    client = httpx.post(metadata["registration_endpoint"], json={"redirect_uris": [REDIRECT], "client_name": "hand"},
                        timeout=10).json()  # fmt: skip
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = {"response_type": "code", "client_id": client["client_id"], "redirect_uri": REDIRECT, "state": "s",
             "code_challenge": challenge, "code_challenge_method": "S256", "resource": resource}  # fmt: skip
    page = httpx.get(metadata["authorization_endpoint"], params=query, timeout=10)
    assert page.status_code == 200
    form = {name: html.unescape(value) for name, value in HIDDEN.findall(page.text)}
    answer = httpx.post(metadata["authorization_endpoint"], data={**form, "passphrase": stack.auth.passphrase},
                        timeout=10)  # fmt: skip
    assert answer.status_code == 302, answer.text
    code = urllib.parse.parse_qs(urllib.parse.urlsplit(answer.headers["location"]).query)["code"][0]
    token = httpx.post(metadata["token_endpoint"], timeout=10, data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "client_id": client["client_id"],
        "code_verifier": verifier})  # fmt: skip
    assert token.status_code == 200, token.text
    return token.json()


def test_a_bare_request_leads_through_the_metadata_to_the_authorization_server(stack: Stack) -> None:
    metadata = discover(stack)
    assert metadata["issuer"] == stack.auth.url
    assert metadata["code_challenge_methods_supported"] == ["S256"]


def test_a_token_from_the_consent_flow_opens_the_gateway(stack: Stack) -> None:
    tokens = tokens_by_hand(stack, stack.mcp)
    answer = initialize(stack.mcp, tokens["access_token"])
    assert answer.status_code == 200 and "serverInfo" in answer.text


def test_a_token_the_authorization_server_made_for_another_server_is_refused_by_this_gateway(stack: Stack) -> None:
    tokens = tokens_by_hand(stack, OTHER_RESOURCE)
    assert jwt.decode(tokens["access_token"], options={"verify_signature": False})["aud"] == OTHER_RESOURCE
    answer = initialize(stack.mcp, tokens["access_token"])
    assert answer.status_code == 401 and "resource_metadata" in answer.headers["www-authenticate"]


def test_in_oauth_mode_the_static_token_does_not_open_the_gateway(stack: Stack) -> None:
    assert initialize(stack.mcp, STATIC_TOKEN).status_code == 401


# --- with the SDK's own OAuth client --------------------------------------------------------------------


def run_sdk_client(stack: Stack, *extra: str) -> dict[str, Any]:
    python = sdk_clients.python_env(sdk_clients.PY_SDK1)
    done = subprocess.run([str(python), str(OAUTH_CLIENT), stack.mcp, stack.auth.passphrase, *extra],
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    lines = done.stdout.strip().splitlines()
    assert lines, f"the client printed nothing (exit {done.returncode}):\n{done.stderr[-3000:]}"
    report = json.loads(lines[-1])
    assert "error" not in report, f"{report['error']}\nauthorization server:\n{stack.auth.output()[-3000:]}"
    return report


def assert_connected(report: dict[str, Any], stack: Stack) -> None:
    assert report["consent_page"] == 200 and report["consent_answer"] == 302
    assert report["authorization_url"] == f"{stack.auth.url}/authorize"
    assert report["authorization_request"]["resource"] == stack.mcp
    assert report["authorization_request"]["code_challenge_method"] == "S256"
    assert "echo" in report["tools"] and report["echo"] == "hello through oauth"
    # The access token lapsed; the SDK refreshed it (a new refresh token each time) and called again.
    assert report["echo_after_refresh"] == "after refresh"
    assert report["tokens_issued"] == 2 and report["refresh_rotated"]
    claims = jwt.decode(report["access_token"], options={"verify_signature": False})
    assert claims["aud"] == stack.mcp and claims["iss"] == stack.auth.url and claims["scope"] == "mcp"


@pytest.mark.network
@pytest.mark.timeout(300)
def test_the_sdk_client_registers_gets_consent_and_calls_a_tool(stack: Stack) -> None:
    registrations = stack.auth.output().count('"POST /register" 201')
    report = run_sdk_client(stack)
    assert_connected(report, stack)
    assert not report["client_id"].startswith("https://")
    assert stack.auth.output().count('"POST /register" 201') == registrations + 1


@pytest.mark.network
@pytest.mark.timeout(300)
def test_the_sdk_client_with_a_client_metadata_document_needs_no_registration(
    stack: Stack, documents: Documents
) -> None:
    url = documents.url("connector")
    documents.served[urllib.parse.urlsplit(url).path] = {
        "client_id": url, "client_name": "Document connector", "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    }  # fmt: skip
    registrations = stack.auth.output().count('"POST /register"')
    report = run_sdk_client(stack, url)
    assert_connected(report, stack)
    assert report["client_id"] == url
    assert urllib.parse.urlsplit(url).path in documents.fetches
    assert stack.auth.output().count('"POST /register"') == registrations
