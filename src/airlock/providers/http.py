"""What every upstream HTTP client airlock opens has in common."""

from __future__ import annotations

from http.cookiejar import CookieJar, DefaultCookiePolicy

__all__ = ["no_cookies"]


def no_cookies() -> CookieJar:
    """A cookie jar that accepts and returns nothing.

    One client serves every caller of a deployment: a ``Set-Cookie`` in the answer
    to one caller must never ride along on another caller's request.
    """
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
