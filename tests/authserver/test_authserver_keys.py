"""The signing key derived from the seed, its key id, and tokens the gateway's own check accepts."""

from __future__ import annotations

import base64
import hashlib
import json

import jwt
import pytest

from catwalk_runtime import oauth
from catwalk_runtime.authserver.keys import Signer

ISSUER = "https://demo-auth.fly.dev"
RESOURCE = "https://demo-a.fly.dev/mcp"
SEED = "a-seed-of-forty-characters-0123456789abc"


def verifier(signer: Signer, resource: str = RESOURCE) -> oauth.TokenVerifier:
    return oauth.TokenVerifier(ISSUER, resource, oauth.Jwks("unused", fetch=lambda _uri: signer.jwks()), ("mcp",))


def test_the_same_seed_gives_the_same_key_and_another_seed_another_key_id() -> None:
    first, again, other = Signer(SEED, ISSUER), Signer(SEED, ISSUER), Signer(SEED[::-1], ISSUER)
    assert first.jwks() == again.jwks()
    assert other.kid != first.kid and other.jwk["x"] != first.jwk["x"]


def test_the_key_id_is_the_rfc7638_thumbprint_of_the_public_key() -> None:
    signer = Signer(SEED, ISSUER)
    canonical = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": signer.jwk["x"]}, separators=(",", ":"))
    expected = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()
    assert signer.kid == expected
    assert signer.jwks() == {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": signer.jwk["x"], "kid": expected,
                                       "use": "sig", "alg": "EdDSA"}]}  # fmt: skip


def test_an_access_token_passes_the_gateways_check_for_its_resource_only() -> None:
    signer = Signer(SEED, ISSUER)
    token = signer.access_token(subject="operator", audience=RESOURCE, client_id="c1", scope="mcp", lifetime=3600)
    claims = verifier(signer).verify(token)
    assert claims["aud"] == RESOURCE and claims["iss"] == ISSUER and claims["client_id"] == "c1"
    assert claims["exp"] - claims["iat"] == 3600
    assert jwt.get_unverified_header(token)["alg"] == "EdDSA"
    with pytest.raises(oauth.InvalidToken, match=r"not for https://demo-b\.fly\.dev/mcp"):
        verifier(signer, "https://demo-b.fly.dev/mcp").verify(token)


def test_a_rotated_seed_invalidates_tokens_signed_with_the_old_key() -> None:
    old, new = Signer(SEED, ISSUER), Signer(SEED + "-rotated", ISSUER)
    token = old.access_token(subject="operator", audience=RESOURCE, client_id="c1", scope="mcp", lifetime=3600)
    with pytest.raises(oauth.InvalidToken, match="no key"):
        verifier(new).verify(token)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_a_tampered_or_unsigned_token_of_the_server_is_refused_by_the_gateway() -> None:
    signer = Signer(SEED, ISSUER)
    token = signer.access_token(subject="operator", audience=RESOURCE, client_id="c1", scope="mcp", lifetime=3600)
    header, payload, signature = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[0] ^= 1
    with pytest.raises(oauth.InvalidToken, match="Signature verification failed"):
        verifier(signer).verify(f"{header}.{payload}.{b64url(bytes(raw))}")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    other = b64url(json.dumps({**claims, "aud": "https://demo-b.fly.dev/mcp"}).encode())
    with pytest.raises(oauth.InvalidToken, match="Signature verification failed"):
        verifier(signer, "https://demo-b.fly.dev/mcp").verify(f"{header}.{other}.{signature}")
    unsigned = b64url(json.dumps({"alg": "none", "kid": signer.kid}).encode())
    with pytest.raises(oauth.InvalidToken, match="algorithm 'none'"):
        verifier(signer).verify(f"{unsigned}.{payload}.")
