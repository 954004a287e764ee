"""Real RSA keys and Panoptes-shaped JWTs for the tests, plus forged ones for attacks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from functools import cache
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


@dataclass(frozen=True)
class KeyPair:
    # The key object, not its PEM: parsing an RSA key costs tens of milliseconds per token.
    private_key: rsa.RSAPrivateKey
    public_pem: str


@cache
def key_pair(name: str = "panoptes") -> KeyPair:
    """A fresh 2048-bit RSA key pair per name, generated once per test session."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return KeyPair(
        private_key=private,
        public_pem=private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode(),
    )


def claims(user_id: Any = 100, *, admin: bool = False, expires_in: int = 3600) -> dict[str, Any]:
    return {
        "data": {
            "id": user_id,
            "login": f"user{user_id}",
            "dname": f"User {user_id}",
            "scope": ["public"],
            "admin": admin,
        },
        "exp": int(time.time()) + expires_in,
        "iss": "pan-test",
        "rng": "ab12",
    }


def sign(payload: dict[str, Any], *, keys: KeyPair | None = None, algorithm: str = "RS512") -> str:
    return jwt.encode(payload, (keys or key_pair()).private_key, algorithm=algorithm)


def token(user_id: Any = 100, *, admin: bool = False, expires_in: int = 3600) -> str:
    return sign(claims(user_id, admin=admin, expires_in=expires_in))


def bearer(user_id: Any = 100, *, admin: bool = False) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(user_id, admin=admin)}"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segments(header: dict[str, Any], payload: dict[str, Any]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"


def unsigned_token(payload: dict[str, Any]) -> str:
    """``alg: none`` with an empty signature."""
    return _segments({"alg": "none", "typ": "JWT"}, payload) + "."


def hs256_with_public_key(payload: dict[str, Any]) -> str:
    """The key-confusion attack: HMAC-signed with the RSA public key as the shared secret."""
    signing_input = _segments({"alg": "HS256", "typ": "JWT"}, payload)
    secret = key_pair().public_pem.encode()
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"
