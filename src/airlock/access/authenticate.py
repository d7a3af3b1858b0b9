"""Turning an ``Authorization`` header into a Principal."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from airlock.access.master_key import hash_key
from airlock.access.principal import Principal
from airlock.errors import AuthenticationError

__all__ = ["Authenticator", "TokenVerifier", "bearer_token"]

# A further way to recognise a token (API-key store, OIDC). Returns None when the token
# is not of its kind, raises AuthenticationError when it is but is not valid.
TokenVerifier = Callable[[str], Awaitable[Principal | None]]

MASTER_PRINCIPAL = Principal(
    id="master", kind="master", tenant="admin", name="master", is_admin=True
)


def bearer_token(header: str | None) -> str:
    if not header:
        raise AuthenticationError(
            "You didn't provide an API key. You need to provide your API key in an "
            "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            code=None,
        )
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationError(
            "The Authorization header must use the Bearer scheme: "
            "'Authorization: Bearer YOUR_KEY'.",
            code=None,
        )
    return token


class Authenticator:
    def __init__(self, master_digest: str, verifiers: tuple[TokenVerifier, ...] = ()) -> None:
        self._master_digest = master_digest
        self._verifiers = verifiers

    async def authenticate(self, header: str | None) -> Principal:
        token = bearer_token(header)
        # Constant-time: compare fixed-length digests, never the raw strings.
        if hmac.compare_digest(hash_key(token), self._master_digest):
            return MASTER_PRINCIPAL
        for verify in self._verifiers:
            principal = await verify(token)
            if principal is not None:
                return principal
        raise AuthenticationError(
            "Incorrect API key provided. You can find your API key in the airlock admin "
            "tools (airlock keys)."
        )
