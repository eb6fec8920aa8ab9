"""The signing key, its public JWK set, and access tokens signed with it.

The Ed25519 key is derived from a secret seed with HKDF-SHA256, so the stack keeps only a random password
(a Pulumi secret) and rotating that password rotates the key; nothing key-shaped is stored anywhere. The key
id is the RFC 7638 thumbprint of the public key (joserfc's), so a new key always has a new ``kid`` and the
gateway refetches the set when it meets one. Tokens are signed by PyJWT, the library the gateway verifies
them with (docs/authorization-server.md).
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from joserfc.jwk import OKPKey

HKDF_INFO = b"catwalk authserver signing key v1"
ALGORITHM = "EdDSA"


def derive_key(seed: str) -> Ed25519PrivateKey:
    """The Ed25519 private key of ``seed``: the same seed always gives the same key."""
    material = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO).derive(seed.encode())
    return Ed25519PrivateKey.from_private_bytes(material)


class Signer:
    """Signs access tokens; publishes the public half as a JWK set."""

    def __init__(self, seed: str, issuer: str) -> None:
        self._key = derive_key(seed)
        self.issuer = issuer
        public = OKPKey.import_key(self._key.public_key())
        self.kid = public.thumbprint()
        self.jwk: dict[str, Any] = {**public.as_dict(private=False), "kid": self.kid, "use": "sig", "alg": ALGORITHM}

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.jwk]}

    def access_token(
        self, *, subject: str, audience: str, client_id: str, scope: str, lifetime: int, now: float | None = None
    ) -> str:
        """A JWT access token (RFC 9068's claims) for ``audience`` alone, valid ``lifetime`` seconds."""
        issued = int(time.time() if now is None else now)
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": audience,
            "client_id": client_id,
            "scope": scope,
            "iat": issued,
            "nbf": issued,
            "exp": issued + lifetime,
            "jti": secrets.token_urlsafe(16),
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"kid": self.kid, "typ": "at+jwt"})
