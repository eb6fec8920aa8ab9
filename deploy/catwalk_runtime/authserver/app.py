"""The server's routes: one request in, one response out, no sockets (those are ``http``'s).

| path | what |
|---|---|
| ``/.well-known/oauth-authorization-server`` | RFC 8414 metadata |
| ``/.well-known/jwks.json`` | the public signing key |
| ``/authorize`` | GET: the consent page; POST: the passphrase, then the redirect with a code |
| ``/token`` | authorization_code and refresh_token grants |
| ``/register`` | RFC 7591 registration (public clients) |
| ``/revoke`` | RFC 7009 revocation of a refresh token (and its family) |
| ``/status`` | a health check for Fly |

Requests are handled one at a time (a lock): the server is for one operator, and it keeps the store and
authlib's grants free of races (a code or refresh token presented twice at once is still seen twice).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc6749 import OAuth2Error

from . import consent
from .authorization import SUBJECT, CatwalkAuthorizationServer, FormRequest, JsonBodyRequest
from .cimd import ClientDocumentError, DocumentClients, is_document_url
from .keys import Signer
from .settings import Settings
from .store import Store

log = logging.getLogger("catwalk.authserver")

METADATA_PATH = "/.well-known/oauth-authorization-server"
JWKS_PATH = "/.well-known/jwks.json"
MAX_FIELDS = 64
JSON_HEADERS = [("Content-Type", "application/json"), ("Cache-Control", "no-store")]
# The consent page: never framed (clickjacking), no scripts, nothing cached or sent on as a referrer.
PAGE_HEADERS = [
    ("Content-Type", "text/html; charset=utf-8"),
    ("Cache-Control", "no-store"),
    ("X-Frame-Options", "DENY"),
    ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Content-Type-Options", "nosniff"),
]
# What a browser-based client (an inspector) may call from another origin: no cookies are used anywhere.
CORS_PATHS = frozenset({METADATA_PATH, JWKS_PATH, "/token", "/register", "/revoke"})
CORS_HEADERS = [("Access-Control-Allow-Origin", "*")]


@dataclass
class Request:
    method: str
    path: str
    query: str = ""
    headers: dict[str, str] = field(default_factory=dict)  # names lower-cased
    body: bytes = b""


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)


def json_response(status: int, value: Any, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(status, json.dumps(value).encode(), [*JSON_HEADERS, *(headers or [])])


def _oauth_error(status: int, error: str, description: str) -> Response:
    return json_response(status, {"error": error, "error_description": description})


def _fields(text: str) -> dict[str, list[str]]:
    return urllib.parse.parse_qs(text, keep_blank_values=True, max_num_fields=MAX_FIELDS)


class App:
    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.store = Store(settings.state_dir, clock)
        self.signer = Signer(settings.signing_seed, settings.issuer)
        self.passphrase = consent.Passphrase(settings.passphrase, clock)
        self.server = CatwalkAuthorizationServer(settings, self.store, self.signer,
                                                 DocumentClients(settings.loopback_clients))  # fmt: skip
        self._lock = threading.Lock()

    def handle(self, request: Request) -> Response:
        self._prefetch(request)
        with self._lock:
            try:
                response = self._route(request)
            except ValueError as exc:  # a malformed form or query (too many fields, bad encoding)
                response = _oauth_error(400, "invalid_request", str(exc)[:200])
        if request.path in CORS_PATHS:
            response.headers.extend(CORS_HEADERS)
        return response

    def _route(self, request: Request) -> Response:
        path, method = request.path, request.method
        if method == "OPTIONS" and path in CORS_PATHS:
            return Response(204, headers=[("Access-Control-Allow-Methods", "GET, POST, OPTIONS"),
                                          ("Access-Control-Allow-Headers", "Content-Type, Authorization, "
                                           "MCP-Protocol-Version"), ("Access-Control-Max-Age", "600")])  # fmt: skip
        routes = {
            (METADATA_PATH, "GET"): lambda: json_response(200, self.server.metadata()),
            (JWKS_PATH, "GET"): lambda: json_response(200, self.signer.jwks()),
            ("/status", "GET"): lambda: Response(200, b"ok\n", [("Content-Type", "text/plain")]),
            ("/authorize", "GET"): lambda: self.authorize_page(request),
            ("/authorize", "POST"): lambda: self.authorize_submit(request),
            ("/token", "POST"): lambda: self.token(request),
            ("/register", "POST"): lambda: self.register(request),
            ("/revoke", "POST"): lambda: self.revoke(request),
        }
        route = routes.get((path, "GET" if method == "HEAD" else method))
        if route is not None:
            return route()
        if any(known == path for known, _ in routes):
            return Response(405, b"Method Not Allowed\n", [("Content-Type", "text/plain")])
        return Response(404, b"Not Found\n", [("Content-Type", "text/plain")])

    # --- helpers ----------------------------------------------------------------------------------------

    def _prefetch(self, request: Request) -> None:
        """A client metadata document the request names, fetched before the lock is taken: a slow document
        holds up only its own request (inside, the cached document or failure is used)."""
        if request.path not in ("/authorize", "/token"):
            return
        try:
            values = _fields(request.query)
            if request.method == "POST":
                values.update(self._form(request))
        except ValueError:
            return  # refused inside, where the answer is made
        client_id = (values.get("client_id") or [""])[0]
        if is_document_url(client_id):
            with contextlib.suppress(ClientDocumentError):
                self.server.documents.get(client_id)

    def _form_request(self, request: Request, form: dict[str, list[str]] | None = None) -> FormRequest:
        uri = self.settings.issuer + request.path + (f"?{request.query}" if request.query else "")
        return FormRequest(request.method, uri, request.headers, _fields(request.query), form or {})

    def _redirect(self, result: tuple[int, Any, list[tuple[str, str]]]) -> Response:
        """An authorization response: with ``iss`` (RFC 9207), so a client talking to several authorization
        servers can tell which one answered (the mix-up attack), on codes and errors alike."""
        status, body, headers = result
        if status == 302:
            headers = [(k, add_params_to_uri(v, [("iss", self.settings.issuer)]) if k.lower() == "location" else v)
                       for k, v in headers]  # fmt: skip
        return self._reply((status, body, headers))

    def _reply(self, result: tuple[int, Any, list[tuple[str, str]]]) -> Response:
        status, body, headers = result
        if isinstance(body, dict):
            own = {name.lower() for name, _ in JSON_HEADERS}  # authlib sets these too: send each once
            return json_response(status, body, [(k, v) for k, v in headers if k.lower() not in own])
        return Response(status, str(body or "").encode(), headers)

    def _form(self, request: Request) -> dict[str, list[str]]:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            raise ValueError("the body must be application/x-www-form-urlencoded")
        return _fields(request.body.decode("utf-8"))

    def _consent_page(self, grant: Any, status: int, error: str | None = None) -> Response:
        request = grant.request
        client = request.client
        name = str(client.metadata.get("client_name") or client.get_client_id())
        params = {key: value for key, value in request.payload.data.items() if key in consent.CARRIED}
        params.setdefault("resource", request.resource)
        if grant.redirect_uri and "redirect_uri" not in params:
            params["redirect_uri"] = grant.redirect_uri
        body = consent.page(params, name, request.resource, request.scope or "", error)
        return Response(status, body, list(PAGE_HEADERS))

    def _invalid_authorization(self, oauth_request: FormRequest, error: OAuth2Error) -> Response:
        """A refused authorization request: to the client's redirect URI when it was validated, else a page
        (never a redirect to an unchecked URI)."""
        result = self.server.handle_error_response(oauth_request, error)
        if result[0] == 302:
            return self._redirect(result)
        text = f"{error.error}: {error.description or ''}".strip()
        return Response(400, f"This authorization request is invalid. {text}\n".encode(),
                        [("Content-Type", "text/plain; charset=utf-8"), ("Cache-Control", "no-store")])  # fmt: skip

    # --- endpoints -------------------------------------------------------------------------------------

    def authorize_page(self, request: Request) -> Response:
        oauth_request = self._form_request(request)
        try:
            grant = self.server.get_consent_grant(oauth_request)
        except OAuth2Error as error:
            return self._invalid_authorization(oauth_request, error)
        return self._consent_page(grant, 200)

    def authorize_submit(self, request: Request) -> Response:
        form = self._form(request)
        oauth_request = self._form_request(request, form)
        try:
            grant = self.server.get_consent_grant(oauth_request)
        except OAuth2Error as error:
            return self._invalid_authorization(oauth_request, error)
        decision = oauth_request.form.get("decision", "allow")
        if decision == "deny":
            log.info("authorization denied by the operator")
            return self._redirect(self.server.create_authorization_response(oauth_request, None, grant))
        wait = self.passphrase.locked_for()
        if wait > 0:
            response = self._consent_page(grant, 429, f"Too many wrong passphrases: try again in {int(wait) + 1} s.")
            response.headers.append(("Retry-After", str(int(wait) + 1)))
            return response
        if not self.passphrase.check(oauth_request.form.get("passphrase", "")):
            log.warning("a wrong passphrase was submitted on the consent page")
            return self._consent_page(grant, 401, "Wrong passphrase.")
        log.info("authorization granted to client %s for %s", oauth_request.client.get_client_id()[:200],
                 oauth_request.resource)  # fmt: skip
        return self._redirect(self.server.create_authorization_response(oauth_request, SUBJECT, grant))

    def token(self, request: Request) -> Response:
        try:
            form = self._form(request)
        except ValueError as exc:
            return _oauth_error(400, "invalid_request", str(exc))
        oauth_request = self._form_request(request, form)
        return self._reply(self.server.create_token_response(oauth_request))

    def revoke(self, request: Request) -> Response:
        try:
            form = self._form(request)
        except ValueError as exc:
            return _oauth_error(400, "invalid_request", str(exc))
        return self._reply(self.server.create_endpoint_response("revocation", self._form_request(request, form)))

    def register(self, request: Request) -> Response:
        try:
            data = json.loads(request.body or b"null")
        except ValueError:
            data = None
        if not isinstance(data, dict):
            return _oauth_error(400, "invalid_client_metadata", "the body must be a JSON object")
        uri = self.settings.issuer + request.path
        response = self.server.create_endpoint_response(
            "client_registration", JsonBodyRequest("POST", uri, request.headers, data)
        )
        return self._reply(response)
