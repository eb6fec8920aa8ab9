"""The authorization server's protocol, request by request, on its routes in this process (a clock the test
moves): registration, the consent page and its passphrase, the code exchange with PKCE, refresh rotation,
resource indicators, and each refusal with the status and error a client acts on."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from catwalk_runtime.authserver import consent
from catwalk_runtime.authserver.app import App, Request, Response
from catwalk_runtime.authserver.cimd import ClientDocumentError, DocumentClients
from catwalk_runtime.authserver.settings import Settings

ISSUER = "https://demo-auth.fly.dev"
RESOURCE = "https://demo-a.fly.dev/mcp"
OTHER = "https://demo-b.fly.dev/mcp"
PASSPHRASE = "correct horse battery staple"
REDIRECT = "https://claude.ai/api/mcp/auth_callback"


class Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


def settings(state_dir: str | None = None) -> Settings:
    return Settings(ISSUER, "seed-" + "x" * 40, PASSPHRASE, (RESOURCE, OTHER), ("mcp",), state_dir)


@dataclass
class Pkce:
    verifier: str
    challenge: str

    @classmethod
    def make(cls) -> Pkce:
        verifier = secrets.token_urlsafe(48)
        digest = hashlib.sha256(verifier.encode()).digest()
        return cls(verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode())


class Driver:
    """Sends requests to the app as a client and a browser would."""

    def __init__(self, app: App) -> None:
        self.app = app

    def send(self, method: str, path: str, query: dict[str, str] | None = None, form: dict[str, str] | None = None,
             body: Any = None) -> Response:  # fmt: skip
        headers: dict[str, str] = {}
        data = b""
        if form is not None:
            headers["content-type"] = "application/x-www-form-urlencoded"
            data = urllib.parse.urlencode(form).encode()
        elif body is not None:
            headers["content-type"] = "application/json"
            data = json.dumps(body).encode()
        return self.app.handle(Request(method, path, urllib.parse.urlencode(query or {}), headers, data))

    def register(self, redirect_uris: list[str] | None = None, **metadata: Any) -> dict[str, Any]:
        response = self.send("POST", "/register", body={"redirect_uris": redirect_uris or [REDIRECT],
                                                         "client_name": "Claude", **metadata})  # fmt: skip
        assert response.status == 201, response.body
        return json.loads(response.body)

    def authorization(self, client_id: str, pkce: Pkce | None = None, **overrides: str | None) -> dict[str, str]:
        pkce = pkce or Pkce.make()
        params: dict[str, str | None] = {
            "response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT, "state": "st-1",
            "code_challenge": pkce.challenge, "code_challenge_method": "S256", "resource": RESOURCE, "scope": "mcp",
        }  # fmt: skip
        params.update(overrides)
        return {key: value for key, value in params.items() if value is not None}

    def consent(self, params: dict[str, str], passphrase: str = PASSPHRASE, decision: str = "allow") -> Response:
        return self.send("POST", "/authorize", form={**params, "passphrase": passphrase, "decision": decision})

    def code(self, params: dict[str, str]) -> str:
        page = self.send("GET", "/authorize", query=params)
        assert page.status == 200, page.body
        answer = self.consent(params)
        assert answer.status == 302, answer.body
        return redirect_params(answer)["code"]

    def token(self, **form: str) -> tuple[int, dict[str, Any]]:
        response = self.send("POST", "/token", form=form)
        return response.status, json.loads(response.body)

    def exchange(self, client_id: str, code: str, pkce: Pkce, **extra: str) -> tuple[int, dict[str, Any]]:
        return self.token(grant_type="authorization_code", code=code, redirect_uri=REDIRECT, client_id=client_id,
                          code_verifier=pkce.verifier, **extra)  # fmt: skip

    def refresh(self, client_id: str, refresh_token: str, **extra: str) -> tuple[int, dict[str, Any]]:
        return self.token(grant_type="refresh_token", refresh_token=refresh_token, client_id=client_id, **extra)

    def tokens(self, **overrides: str | None) -> tuple[str, dict[str, Any]]:
        """A registered client and the first tokens it got."""
        client_id = self.register()["client_id"]
        pkce = Pkce.make()
        code = self.code(self.authorization(client_id, pkce, **overrides))
        status, tokens = self.exchange(client_id, code, pkce)
        assert status == 200, tokens
        return client_id, tokens


def redirect_params(response: Response) -> dict[str, str]:
    location = dict(response.headers)["Location"]
    assert location.startswith(REDIRECT + "?"), location
    return {key: values[0] for key, values in urllib.parse.parse_qs(urllib.parse.urlsplit(location).query).items()}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def driver(clock: Clock) -> Driver:
    return Driver(App(settings(), clock))


def claims(signer_app: App, token: str) -> dict[str, Any]:
    import jwt

    key = jwt.PyJWK.from_dict(signer_app.signer.jwk)
    return jwt.decode(token, key, algorithms=["EdDSA"], audience=[RESOURCE, OTHER], options={"verify_exp": False})


# --- discovery and registration -------------------------------------------------------------------------


def test_the_metadata_advertises_pkce_s256_public_clients_and_client_id_documents(driver: Driver) -> None:
    response = driver.send("GET", "/.well-known/oauth-authorization-server")
    document = json.loads(response.body)
    assert response.status == 200 and document["issuer"] == ISSUER
    assert (
        document["authorization_endpoint"] == f"{ISSUER}/authorize" and document["token_endpoint"] == f"{ISSUER}/token"
    )
    assert document["registration_endpoint"] == f"{ISSUER}/register"
    assert document["revocation_endpoint"] == f"{ISSUER}/revoke"
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert document["token_endpoint_auth_methods_supported"] == ["none"]
    assert document["client_id_metadata_document_supported"] is True
    assert ("Access-Control-Allow-Origin", "*") in response.headers


def test_registration_makes_a_public_client_even_when_a_secret_method_is_asked_for(driver: Driver) -> None:
    client = driver.register(token_endpoint_auth_method="client_secret_post")
    assert client["token_endpoint_auth_method"] == "none" and "client_secret" not in client
    assert client["redirect_uris"] == [REDIRECT] and client["client_id"]


@pytest.mark.parametrize(
    "uri",
    ["http://claude.example.com/callback", "javascript:alert(1)", "https://claude.ai/cb#fragment", 'http://x/"q\\'],
)
def test_registration_refuses_a_redirect_uri_that_could_leak_the_code(driver: Driver, uri: str) -> None:
    response = driver.send("POST", "/register", body={"redirect_uris": [uri]})
    assert response.status == 400 and json.loads(response.body)["error"] == "invalid_redirect_uri"


def test_registration_refuses_a_body_that_is_not_a_json_object(driver: Driver) -> None:
    response = driver.send("POST", "/register", body=["not", "an", "object"])
    assert response.status == 400 and json.loads(response.body)["error"] == "invalid_client_metadata"


# --- the consent page -----------------------------------------------------------------------------------


def test_the_consent_page_names_the_client_and_the_server_and_cannot_be_framed(driver: Driver) -> None:
    client_id = driver.register()["client_id"]
    page = driver.send("GET", "/authorize", query=driver.authorization(client_id))
    text = page.body.decode()
    assert page.status == 200 and "Claude" in text and RESOURCE in text and 'name="passphrase"' in text
    assert "https://claude.ai" in text  # where the browser goes next
    headers = dict(page.headers)
    assert headers["X-Frame-Options"] == "DENY" and "frame-ancestors 'none'" in headers["Content-Security-Policy"]


def test_a_wrong_passphrase_shows_the_form_again_and_the_right_one_then_gives_a_code(driver: Driver) -> None:
    client_id = driver.register()["client_id"]
    params = driver.authorization(client_id)
    wrong = driver.consent(params, passphrase="not the passphrase")
    assert wrong.status == 401 and "Wrong passphrase" in wrong.body.decode()
    assert "Location" not in dict(wrong.headers)
    right = driver.consent(params)
    assert right.status == 302 and redirect_params(right)["state"] == "st-1" and redirect_params(right)["code"]


def test_wrong_passphrases_lock_the_consent_page_for_a_while(driver: Driver, clock: Clock) -> None:
    client_id = driver.register()["client_id"]
    params = driver.authorization(client_id)
    for _ in range(consent.MAX_FAILURES):
        assert driver.consent(params, passphrase="guess").status == 401
    locked = driver.consent(params)  # even the right passphrase waits
    assert locked.status == 429 and int(dict(locked.headers)["Retry-After"]) > 0
    clock.now += consent.WINDOW_S + 1
    assert driver.consent(params).status == 302


def test_every_authorization_response_names_its_issuer(driver: Driver) -> None:
    client_id = driver.register()["client_id"]
    granted = driver.consent(driver.authorization(client_id))
    refused = driver.send("GET", "/authorize", query=driver.authorization(client_id, code_challenge_method="plain"))
    assert redirect_params(granted)["iss"] == ISSUER and redirect_params(refused)["iss"] == ISSUER
    metadata = json.loads(driver.send("GET", "/.well-known/oauth-authorization-server").body)
    assert metadata["authorization_response_iss_parameter_supported"] is True


def test_the_operator_can_deny_and_the_client_is_told_access_denied(driver: Driver) -> None:
    client_id = driver.register()["client_id"]
    denied = driver.consent(driver.authorization(client_id), passphrase="", decision="deny")
    assert denied.status == 302 and redirect_params(denied)["error"] == "access_denied"
    assert "code" not in redirect_params(denied)


# --- refusals at /authorize -----------------------------------------------------------------------------


def test_an_authorization_request_without_pkce_is_refused(driver: Driver) -> None:
    client_id = driver.register()["client_id"]
    params = driver.authorization(client_id, code_challenge=None, code_challenge_method=None)
    answer = driver.send("GET", "/authorize", query=params)
    assert answer.status == 302
    assert (
        redirect_params(answer)["error"] == "invalid_request" and "PKCE" in redirect_params(answer)["error_description"]
    )


def test_plain_pkce_is_refused(driver: Driver) -> None:
    client_id = driver.register()["client_id"]
    verifier = secrets.token_urlsafe(48)
    params = driver.authorization(client_id, code_challenge=verifier, code_challenge_method="plain")
    answer = driver.send("GET", "/authorize", query=params)
    assert answer.status == 302 and redirect_params(answer)["error"] == "invalid_request"
    assert "S256" in redirect_params(answer)["error_description"]
    # Nor can the form be posted past the page with it.
    assert redirect_params(driver.consent(params))["error"] == "invalid_request"


def test_a_redirect_uri_not_registered_gets_an_error_page_never_a_redirect(driver: Driver) -> None:
    client_id = driver.register()["client_id"]
    params = driver.authorization(client_id, redirect_uri="https://attacker.example.com/steal")
    for answer in (driver.send("GET", "/authorize", query=params), driver.consent(params)):
        assert answer.status == 400 and "Location" not in dict(answer.headers)
        assert "invalid_request" in answer.body.decode()


def test_an_unknown_client_gets_an_error_page(driver: Driver) -> None:
    answer = driver.send("GET", "/authorize", query=driver.authorization("no-such-client"))
    assert answer.status == 400 and "invalid_client" in answer.body.decode()


def test_a_resource_this_server_does_not_serve_is_refused_as_invalid_target(driver: Driver) -> None:
    client_id = driver.register()["client_id"]
    params = driver.authorization(client_id, resource="https://elsewhere.example.com/mcp")
    answer = driver.send("GET", "/authorize", query=params)
    assert answer.status == 302 and redirect_params(answer)["error"] == "invalid_target"


def test_without_a_resource_a_server_for_several_resources_refuses(driver: Driver) -> None:
    client_id = driver.register()["client_id"]
    answer = driver.send("GET", "/authorize", query=driver.authorization(client_id, resource=None))
    assert answer.status == 302 and redirect_params(answer)["error"] == "invalid_target"


def test_an_unknown_scope_is_refused(driver: Driver) -> None:
    client_id = driver.register()["client_id"]
    answer = driver.send("GET", "/authorize", query=driver.authorization(client_id, scope="admin"))
    assert answer.status == 302 and redirect_params(answer)["error"] == "invalid_scope"


# --- the code exchange ----------------------------------------------------------------------------------


def test_a_code_gives_an_hour_long_token_for_the_resource_asked_and_a_refresh_token(driver: Driver) -> None:
    _, tokens = driver.tokens(resource=OTHER)
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 3600 and tokens["refresh_token"]
    token_claims = claims(driver.app, tokens["access_token"])
    assert token_claims["aud"] == OTHER and token_claims["iss"] == ISSUER and token_claims["scope"] == "mcp"


def test_without_a_scope_every_offered_scope_is_granted(driver: Driver) -> None:
    _, tokens = driver.tokens(scope=None)
    assert tokens["scope"] == "mcp"


def test_a_reused_code_is_refused_and_the_tokens_it_gave_are_revoked(
    driver: Driver, caplog: pytest.LogCaptureFixture
) -> None:
    client_id = driver.register()["client_id"]
    pkce = Pkce.make()
    code = driver.code(driver.authorization(client_id, pkce))
    status, first = driver.exchange(client_id, code, pkce)
    assert status == 200
    status, again = driver.exchange(client_id, code, pkce)
    assert status == 400 and again["error"] == "invalid_grant"
    status, refreshed = driver.refresh(client_id, first["refresh_token"])
    assert status == 400 and refreshed["error"] == "invalid_grant"
    assert f"an authorization code of client {client_id} was presented again" in caplog.text
    assert code not in caplog.text


def test_an_expired_code_is_refused(driver: Driver, clock: Clock) -> None:
    client_id = driver.register()["client_id"]
    pkce = Pkce.make()
    code = driver.code(driver.authorization(client_id, pkce))
    clock.now += 61
    status, answer = driver.exchange(client_id, code, pkce)
    assert status == 400 and answer["error"] == "invalid_grant"


def test_a_wrong_or_missing_code_verifier_is_refused(driver: Driver) -> None:
    client_id = driver.register()["client_id"]
    pkce = Pkce.make()
    code = driver.code(driver.authorization(client_id, pkce))
    status, answer = driver.exchange(client_id, code, Pkce.make())
    assert status == 400 and answer["error"] == "invalid_grant"
    status, answer = driver.token(grant_type="authorization_code", code=code, redirect_uri=REDIRECT,
                                  client_id=client_id)  # fmt: skip
    assert status == 400 and answer["error"] == "invalid_request"
    assert driver.exchange(client_id, code, pkce)[0] == 200  # a failed check does not spend the code


def test_a_code_is_bound_to_its_client_and_redirect_uri(driver: Driver) -> None:
    client_id, other_id = driver.register()["client_id"], driver.register()["client_id"]
    pkce = Pkce.make()
    code = driver.code(driver.authorization(client_id, pkce))
    assert driver.exchange(other_id, code, pkce)[1]["error"] == "invalid_grant"
    status, answer = driver.token(grant_type="authorization_code", code=code, redirect_uri=REDIRECT + "/other",
                                  client_id=client_id, code_verifier=pkce.verifier)  # fmt: skip
    assert status == 400 and answer["error"] == "invalid_grant"


def test_a_token_request_naming_another_resource_than_its_code_is_refused(driver: Driver) -> None:
    client_id = driver.register()["client_id"]
    pkce = Pkce.make()
    code = driver.code(driver.authorization(client_id, pkce))
    status, answer = driver.exchange(client_id, code, pkce, resource=OTHER)
    assert status == 400 and answer["error"] == "invalid_target"


# --- refresh tokens -------------------------------------------------------------------------------------


def test_a_refresh_rotates_the_refresh_token_and_keeps_the_resource(driver: Driver) -> None:
    client_id, tokens = driver.tokens(resource=OTHER)
    status, refreshed = driver.refresh(client_id, tokens["refresh_token"])
    assert status == 200 and refreshed["refresh_token"] != tokens["refresh_token"]
    assert claims(driver.app, refreshed["access_token"])["aud"] == OTHER
    assert driver.refresh(client_id, refreshed["refresh_token"])[0] == 200


def test_a_rotated_out_refresh_token_presented_again_revokes_its_whole_family(
    driver: Driver, caplog: pytest.LogCaptureFixture
) -> None:
    client_id, tokens = driver.tokens()
    _, rotated = driver.refresh(client_id, tokens["refresh_token"])
    status, replay = driver.refresh(client_id, tokens["refresh_token"])
    assert status == 400 and replay["error"] == "invalid_grant"
    status, after = driver.refresh(client_id, rotated["refresh_token"])  # the thief's or the owner's: both end
    assert status == 400 and after["error"] == "invalid_grant"
    assert "refresh token of client" in caplog.text and tokens["refresh_token"] not in caplog.text


def test_a_refresh_token_is_bound_to_its_client(driver: Driver) -> None:
    _, tokens = driver.tokens()
    other_id = driver.register()["client_id"]
    assert driver.refresh(other_id, tokens["refresh_token"])[1]["error"] == "invalid_grant"


def test_a_refresh_token_expires_after_thirty_days(driver: Driver, clock: Clock) -> None:
    client_id, tokens = driver.tokens()
    clock.now += 30 * 24 * 3600 + 1
    assert driver.refresh(client_id, tokens["refresh_token"])[1]["error"] == "invalid_grant"


def test_a_revoked_refresh_token_ends_its_grant(driver: Driver) -> None:
    client_id, tokens = driver.tokens()
    _, rotated = driver.refresh(client_id, tokens["refresh_token"])
    answer = driver.send("POST", "/revoke", form={"token": rotated["refresh_token"], "client_id": client_id,
                                                  "token_type_hint": "refresh_token"})  # fmt: skip
    assert answer.status == 200
    assert driver.refresh(client_id, rotated["refresh_token"])[1]["error"] == "invalid_grant"
    # An unknown token or an access token (a JWT, checked offline) is answered 200 too (RFC 7009 2.2).
    for token in ("not-a-token", rotated["access_token"]):
        assert driver.send("POST", "/revoke", form={"token": token, "client_id": client_id}).status == 200


def test_a_client_cannot_revoke_another_clients_refresh_token(driver: Driver) -> None:
    client_id, tokens = driver.tokens()
    other_id = driver.register()["client_id"]
    answer = driver.send("POST", "/revoke", form={"token": tokens["refresh_token"], "client_id": other_id})
    assert answer.status == 400 and json.loads(answer.body)["error"] == "invalid_grant"
    assert driver.refresh(client_id, tokens["refresh_token"])[0] == 200


def test_only_the_code_and_refresh_grants_are_served(driver: Driver) -> None:
    status, answer = driver.token(grant_type="client_credentials", client_id="x")
    assert status == 400 and answer["error"] == "unsupported_grant_type"


# --- state ----------------------------------------------------------------------------------------------


def test_with_a_state_directory_clients_and_refresh_tokens_survive_a_restart(tmp_path: Path, clock: Clock) -> None:
    first = Driver(App(settings(str(tmp_path)), clock))
    client_id, tokens = first.tokens()
    first.app.store.close()
    again = Driver(App(settings(str(tmp_path)), clock))
    status, refreshed = again.refresh(client_id, tokens["refresh_token"])
    assert status == 200 and refreshed["access_token"]
    database = (tmp_path / "authserver.sqlite3").read_bytes()
    assert tokens["refresh_token"].encode() not in database  # stored as a digest only
    assert (tmp_path / "authserver.sqlite3").stat().st_mode & 0o077 == 0


# --- client metadata documents --------------------------------------------------------------------------


def test_a_client_id_document_whose_client_id_differs_is_refused(driver: Driver) -> None:
    url = "https://client.example.com/oauth/client.json"
    driver.app.server.documents = DocumentClients(fetch=lambda _url, _loopback: {
        "client_id": "https://evil.example.com/client.json", "redirect_uris": [REDIRECT]})  # fmt: skip
    answer = driver.send("GET", "/authorize", query=driver.authorization(url))
    assert (
        answer.status == 400 and "invalid_client" in answer.body.decode() and "not its own URL" in answer.body.decode()
    )


def test_a_client_id_document_is_used_for_its_redirect_uris(driver: Driver) -> None:
    url = "https://client.example.com/oauth/client.json"
    document = {"client_id": url, "client_name": "Example", "redirect_uris": [REDIRECT]}
    driver.app.server.documents = DocumentClients(fetch=lambda _url, _loopback: document)
    pkce = Pkce.make()
    code = driver.code(driver.authorization(url, pkce))
    status, tokens = driver.exchange(url, code, pkce)
    assert status == 200 and claims(driver.app, tokens["access_token"])["client_id"] == url


def test_a_client_id_on_a_non_public_address_is_never_fetched() -> None:
    documents = DocumentClients(allow_loopback=False)
    with pytest.raises(ClientDocumentError, match="not public"):
        documents.get("https://127.0.0.1:9/client.json")
    with pytest.raises(ClientDocumentError, match="https"):
        documents.get("http://client.example.com/client.json")


def test_a_document_that_could_not_be_had_is_not_fetched_again_at_once(clock: Clock) -> None:
    calls: list[str] = []

    def unreachable(url: str, _loopback: bool) -> Any:
        calls.append(url)
        raise ClientDocumentError("the client metadata document answered HTTP 500")

    documents = DocumentClients(fetch=unreachable, clock=clock)
    for _ in range(3):
        with pytest.raises(ClientDocumentError, match="HTTP 500"):
            documents.get("https://client.example.com/client.json")
    assert len(calls) == 1
    clock.now += 31
    with pytest.raises(ClientDocumentError):
        documents.get("https://client.example.com/client.json")
    assert len(calls) == 2


def test_only_two_documents_are_fetched_at_once() -> None:
    release = threading.Event()
    started = threading.Semaphore(0)

    def slow(url: str, _loopback: bool) -> Any:
        started.release()
        release.wait(10)
        return {"client_id": url, "redirect_uris": [REDIRECT]}

    documents = DocumentClients(fetch=slow)
    workers = [threading.Thread(target=documents.get, args=(f"https://c{i}.example.com/client.json",)) for i in (1, 2)]
    for worker in workers:
        worker.start()
    assert started.acquire(timeout=5) and started.acquire(timeout=5)
    with pytest.raises(ClientDocumentError, match="too many"):
        documents.get("https://c3.example.com/client.json")
    release.set()
    for worker in workers:
        worker.join(5)
    assert documents.get("https://c1.example.com/client.json").client_id == "https://c1.example.com/client.json"
