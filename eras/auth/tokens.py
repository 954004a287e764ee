"""Who is asking: Panoptes bearer tokens, verified locally (RS512) or by asking Panoptes."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from eras.auth.cache import TTLCache
from eras.auth.panoptes import PanoptesClient
from eras.errors import Unauthenticated

# The only algorithm Panoptes signs with. Listing exactly one also rules out "none" and the
# HS256-with-the-public-key-as-secret confusion.
ALGORITHMS: Final = ["RS512"]
# What the web front end sends when nobody is logged in.
_NO_TOKEN_VALUES: Final = frozenset({"null", "undefined"})

MISSING_HEADER: Final = "Missing Authorization header"
MALFORMED_HEADER: Final = "Malformed Authorization header: expected 'Bearer <token>'"
NOT_VERIFIED: Final = "Invalid bearer token"
EXPIRED: Final = "Bearer token has expired"


@dataclass(frozen=True, slots=True)
class Identity:
    user_id: int
    admin: bool = False
    login: str | None = None


def bearer_token(header: str | None) -> str | None:
    """The token in an ``Authorization`` header; ``None`` when there is none (or ``Bearer null``).

    The scheme is case-insensitive (RFC 9110) and whitespace around the parts is ignored; anything
    else that is not exactly a scheme and one token is malformed.
    """
    if header is None or not header.strip():
        return None
    parts = header.split()
    if len(parts) != 2 or parts[0].lower() != "bearer":
        raise Unauthenticated(MALFORMED_HEADER)
    token = parts[1]
    if token.lower() in _NO_TOKEN_VALUES:
        return None
    return token


def _user_id(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return None
    return value


def _identity(user_id: int | None, user: dict[str, Any]) -> Identity:
    """An identity from a token's ``data`` or a Panoptes user; only ``admin: true`` is admin."""
    if user_id is None:
        raise Unauthenticated(NOT_VERIFIED)
    login = user.get("login")
    return Identity(
        user_id=user_id,
        admin=user.get("admin") is True,
        login=login if isinstance(login, str) else None,
    )


class TokenVerifier(Protocol):
    async def identify(self, token: str) -> Identity: ...


def load_public_key(value: str) -> RSAPublicKey:
    """PEM text, or the path of a PEM file; must be an RSA public key."""
    text = value if value.lstrip().startswith("-----BEGIN") else Path(value).read_text()
    try:
        key = load_pem_public_key(text.encode())
    except ValueError as error:
        raise ValueError(f"ERAS_PANOPTES_PUBLIC_KEY is not a PEM public key: {error}") from None
    if not isinstance(key, RSAPublicKey):
        raise ValueError("ERAS_PANOPTES_PUBLIC_KEY must be an RSA public key")
    return key


class LocalTokenVerifier:
    """Checks the RS512 signature and expiry against the configured key; no network call.

    A volunteer's browser sends the same token with every call until it expires, and checking
    an RS512 signature costs more than answering most calls: a token that verified is
    remembered, with its expiry, and each later use only checks that it has not expired.
    """

    def __init__(
        self,
        public_key: RSAPublicKey,
        *,
        remembered: int = 4096,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = public_key
        self._remembered = remembered
        self._clock = clock
        self._verified: dict[str, tuple[Identity, float]] = {}

    async def identify(self, token: str) -> Identity:
        known = self._verified.get(token)
        if known is not None:
            identity, expires = known
            if self._clock() < expires:
                return identity
            del self._verified[token]
            raise Unauthenticated(EXPIRED)
        try:
            payload = jwt.decode(
                token, self._key, algorithms=ALGORITHMS, options={"require": ["exp"]}
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated(EXPIRED) from None
        except jwt.InvalidTokenError:
            raise Unauthenticated(NOT_VERIFIED) from None
        data: Any = payload.get("data")
        if not isinstance(data, dict):
            raise Unauthenticated(NOT_VERIFIED)
        identity = _identity(_user_id(data.get("id")), data)
        exp: object = payload.get("exp")  # required, and checked, by jwt.decode
        if isinstance(exp, int | float) and not isinstance(exp, bool):
            while len(self._verified) >= self._remembered:
                del self._verified[next(iter(self._verified))]
            self._verified[token] = (identity, float(exp))
        return identity


class PanoptesTokenVerifier:
    """Asks Panoptes' ``/api/me`` who a token belongs to, remembering answers for a while."""

    def __init__(self, client: PanoptesClient, cache: TTLCache[str, Identity]) -> None:
        self._client = client
        self._cache = cache

    async def identify(self, token: str) -> Identity:
        # Keyed by a digest so the cache never holds usable credentials.
        key = hashlib.sha256(token.encode()).hexdigest()
        return await self._cache.get_or_load(key, lambda: self._ask(token))

    async def _ask(self, token: str) -> Identity:
        user = await self._client.me(token)
        raw_id = user.get("id")
        # /api/me gives the id as a string of digits.
        user_id = _user_id(int(raw_id)) if isinstance(raw_id, str) and raw_id.isdigit() else None
        return _identity(user_id, user)


class Authenticator:
    """Turns an ``Authorization`` header into an :class:`Identity`, or refuses it with 401."""

    def __init__(self, verifier: TokenVerifier) -> None:
        self._verifier = verifier

    async def require(self, header: str | None) -> Identity:
        identity, _token = await self.require_with_token(header)
        return identity

    async def require_with_token(self, header: str | None) -> tuple[Identity, str]:
        """The identity and the token itself, for calls to Panoptes on the user's behalf."""
        token = bearer_token(header)
        if token is None:
            raise Unauthenticated(MISSING_HEADER)
        return await self._verifier.identify(token), token
