"""The Fly token stays out of repr, pickles, logs and exception text; it is read at call time."""

from __future__ import annotations

import json
import logging
import pickle
import traceback

import pytest
import requests
from requests.adapters import BaseAdapter

from components.fly import FlyApiError, FlyClient, FlyNotFound, FlyUnauthorized
from tests.tools.fly_emulator.fixture import running_emulator

TOKEN = "fm2_sekrit-token-value-0123456789"


def everything_said(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc) + str(getattr(exc, "body", ""))


def test_token_is_absent_from_repr_and_pickles():
    client = FlyClient("http://127.0.0.1:1", TOKEN)
    assert TOKEN not in repr(client) and TOKEN not in str(vars(client))
    restored = pickle.loads(pickle.dumps(client))
    assert TOKEN.encode() not in pickle.dumps(client)
    assert restored._token() is None and restored.base_url == "http://127.0.0.1:1"


def test_token_is_absent_from_every_log_record_of_a_session_with_failures(caplog):
    with running_emulator(token=TOKEN, fault_rate=0.5, seed=4) as emu:
        caplog.set_level(logging.DEBUG)  # includes urllib3's connection logs
        client = FlyClient(emu.base_url, TOKEN, mutation_rate=0, backoff=0.001)
        client.create_app("cw-secret", "personal")
        m = client.create_machine("cw-secret", "m-0", "iad", {"image": "img", "env": {"MCP_AUTH_TOKEN": "x"}})
        client.set_secrets("cw-secret", {"API": "v"})
        client.wait_machine("cw-secret", m.id, "started", deadline_s=10)
        with pytest.raises(FlyNotFound) as caught:
            client.get_machine("cw-secret", "nope")
        assert any(c["fault"] for c in emu.calls())
    records = caplog.records
    assert any(r.name == "catwalk.fly" for r in records) and any(r.name.startswith("urllib3") for r in records)
    for record in records:
        assert TOKEN not in record.getMessage(), record.name
    assert TOKEN not in everything_said(caught.value)


def test_a_wrong_token_is_a_401_whose_error_does_not_carry_the_token():
    with running_emulator(token="the-right-one") as emu:
        client = FlyClient(emu.base_url, TOKEN, mutation_rate=0, backoff=0.001)
        with pytest.raises(FlyUnauthorized) as caught:
            client.get_app("anything")
    err = caught.value
    assert err.status == 401 and err.request_id and err.method == "GET" and err.path == "/v1/apps/anything"
    assert "authenticated" in err.message
    assert TOKEN not in everything_said(err)


class EchoAdapter(BaseAdapter):
    """A server that (badly) echoes the Authorization header back in its error text."""

    def send(self, request, **kwargs):
        resp = requests.Response()
        resp.status_code = 400
        resp._content = ('{"error": "bad request from ' + request.headers["Authorization"] + '"}').encode()
        resp.headers["fly-request-id"] = "req-echo"
        resp.url, resp.request = request.url, request
        return resp

    def close(self):
        pass


def test_a_token_echoed_back_by_the_server_is_redacted_from_the_exception():
    session = requests.Session()
    session.mount("https://", EchoAdapter())
    client = FlyClient("https://fly.invalid", TOKEN, session=session, mutation_rate=0)
    with pytest.raises(FlyApiError) as caught:
        client.get_app("x")
    assert "[redacted]" in caught.value.message and caught.value.request_id == "req-echo"
    assert TOKEN not in everything_said(caught.value)


def test_missing_token_fails_before_any_request_is_sent(monkeypatch):
    monkeypatch.delenv("FLY_API_TOKEN", raising=False)
    with running_emulator() as emu:
        with pytest.raises(FlyUnauthorized, match="FLY_API_TOKEN"):
            FlyClient(emu.base_url).get_app("x")
        assert emu.calls() == []


def test_token_and_url_are_read_from_the_environment_at_call_time(monkeypatch):
    monkeypatch.delenv("FLY_API_TOKEN", raising=False)
    monkeypatch.delenv("FLY_API_URL", raising=False)
    client = FlyClient(mutation_rate=0)
    assert client.base_url == "https://api.machines.dev"
    with running_emulator(token=TOKEN) as emu:
        monkeypatch.setenv("FLY_API_URL", emu.base_url)
        monkeypatch.setenv("FLY_API_TOKEN", TOKEN)
        assert client.create_app("cw-env", "personal").name == "cw-env"


def test_a_flyv1_macaroon_token_is_sent_with_its_own_scheme():
    with running_emulator(token="fm2_abc") as emu:
        client = FlyClient(emu.base_url, "FlyV1 fm2_abc", mutation_rate=0)
        assert client.create_app("cw-macaroon", "personal").name == "cw-macaroon"


class EchoBodyAdapter(BaseAdapter):
    """A server that (badly) quotes the request body in its error text."""

    def send(self, request, **kwargs):
        resp = requests.Response()
        resp.status_code = 422
        resp._content = json.dumps({"error": f"cannot apply {request.body}"}).encode()
        resp.url, resp.request = request.url, request
        return resp

    def close(self):
        pass


SECRET_VALUE = "sk-live-value-that-must-stay-hidden"
OTHER_VALUE = SECRET_VALUE[::-1]


def echo_client() -> FlyClient:
    session = requests.Session()
    session.mount("https://", EchoBodyAdapter())
    return FlyClient("https://fly.invalid", TOKEN, session=session, mutation_rate=0)


def test_secret_values_quoted_back_by_the_server_are_redacted_from_the_exception():
    with pytest.raises(FlyApiError) as caught:
        echo_client().set_secrets("cw-app", {"API_KEY": SECRET_VALUE, "OTHER": OTHER_VALUE})
    said = everything_said(caught.value)
    assert "cannot apply" in said and "[redacted]" in said
    assert SECRET_VALUE not in said and OTHER_VALUE not in said


def test_secrets_provider_errors_carry_no_secret_value(monkeypatch):
    from components.providers import FlySecretsProvider
    from components.providers import base as provider_base

    monkeypatch.setattr(provider_base, "make_client", lambda token=None, base_url=None: echo_client())
    with pytest.raises(Exception) as caught:
        FlySecretsProvider().create({"app": "cw-app", "values": {"API_KEY": SECRET_VALUE}})
    said = everything_said(caught.value)
    assert "cw-app" in said and "API_KEY" in said and SECRET_VALUE not in said


@pytest.mark.parametrize("url", ["http://fly.example.com", "ftp://127.0.0.1", "http://10.0.0.5:4280"])
def test_the_token_is_never_sent_to_a_plain_http_api_url_off_this_machine(url):
    session = requests.Session()
    session.mount("http://", EchoAdapter())
    with pytest.raises(FlyApiError, match="must be an https:// URL") as caught:
        FlyClient(url, TOKEN, session=session, mutation_rate=0).get_app("x")
    assert TOKEN not in everything_said(caught.value)


def test_plain_http_to_loopback_is_allowed_for_a_local_emulator():
    with running_emulator(token=TOKEN) as emu:
        assert emu.base_url.startswith("http://127.0.0.1:")
        assert FlyClient(emu.base_url, TOKEN, mutation_rate=0).create_app("cw-local", "personal").name == "cw-local"
