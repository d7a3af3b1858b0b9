"""The admin HTTP API: API keys (create, list, show, rotate, revoke) and usage reports.

Key management is for admins only (the master key or a key created with
``is_admin``): 401 without a valid key, 403 for any other caller. ``GET /admin/usage``
is open to every authenticated caller, scoped: an admin sees every tenant (or one,
with ``tenant=``), anyone else only its own tenant.

A new or rotated key's secret is in the response body exactly once, with
``cache-control: no-store``; listings never contain secrets or hashes. Errors name the
offending field and never echo its value.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Literal, Protocol, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from airlock.access.keys import IssuedKey, KeySpec, KeyStore
from airlock.access.principal import Principal, PrivacyPolicy
from airlock.api.responses import json_response
from airlock.errors import (
    BadRequestError,
    BodyTooLargeError,
    PermissionDeniedError,
    ServiceUnavailableError,
)
from airlock.ledger.reports import GroupBy, Report
from airlock.ledger.timeparse import parse_when
from airlock.protocol.parsing import parse_request

__all__ = ["AdminHost", "CreateKeyBody", "UsageQuery", "UsageSource", "admin_routes"]

_log = logging.getLogger("airlock.admin")
T = TypeVar("T")

# Admin bodies are a few hundred bytes; anything far larger is a mistake.
_MAX_BODY = 64 * 1024
_NO_STORE = {"cache-control": "no-store"}


class UsageSource(Protocol):
    """What the usage endpoint needs of the ledger (``ledger.runtime.Ledger``)."""

    async def report(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        by: GroupBy = "model",
        tenant: str | None = None,
    ) -> Report: ...


class AdminHost(Protocol):
    """What these handlers need of ``app.state.gateway`` (``api.gateway.Gateway``)."""

    @property
    def keys(self) -> KeyStore | None: ...
    @property
    def ledger(self) -> UsageSource | None: ...
    async def authenticate(self, request: Request) -> Principal: ...


class _Body(BaseModel):
    # Strict: "5" is not an rpm and true is not a count; unknown fields are typos.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class CreateKeyBody(_Body):
    """``POST /admin/keys``; the fields of ``airlock keys create``."""

    name: str
    tenant: str = "default"
    models: list[str] | None = None
    regions: list[str] | None = None
    rpm: int | None = None
    tpm: int | None = None
    budget_usd_daily: float | None = None
    budget_usd_monthly: float | None = None
    expires_at: Annotated[str, Field(max_length=64)] | None = None
    privacy_policy: PrivacyPolicy | None = None
    is_admin: bool = False


class UsageQuery(_Body):
    """``GET /admin/usage`` query parameters."""

    since: Annotated[str, Field(max_length=64)] | None = None
    until: Annotated[str, Field(max_length=64)] | None = None
    by: GroupBy = "model"
    tenant: Annotated[str, Field(max_length=128)] | None = None


class _ListQuery(_Body):
    tenant: Annotated[str, Field(max_length=128)] | None = None
    active: Literal["true", "false", "1", "0"] | None = None


def _host(request: Request) -> AdminHost:
    host: AdminHost = request.app.state.gateway
    return host


def _mark(request: Request) -> None:
    ctx = request.scope.get("state", {}).get("ctx")
    if ctx is not None:
        ctx.endpoint = "admin"


async def _admin(request: Request) -> KeyStore:
    """Authenticate an admin caller and return the key store."""
    _mark(request)
    gw = _host(request)
    principal = await gw.authenticate(request)
    if not principal.is_admin:
        raise PermissionDeniedError(
            "Managing API keys requires an admin key (the master key or a key created "
            "with is_admin)."
        )
    if gw.keys is None:
        raise ServiceUnavailableError(
            "API key management is not available: this gateway runs without a key store."
        )
    return gw.keys


async def _store_call(op: Callable[[], Awaitable[T]], what: str) -> T:
    """Run a database operation; a database failure becomes a 503 naming only its type."""
    try:
        return await op()
    except (SQLAlchemyError, OSError) as exc:
        # The driver's message can quote SQL parameters: log and answer with the type only.
        _log.error("admin_store_error", extra={"what": what, "exc_type": type(exc).__name__})
        raise ServiceUnavailableError(
            f"The {what} is unavailable right now ({type(exc).__name__}). Try again shortly."
        ) from None


async def _read_body(request: Request) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > _MAX_BODY:
            raise BodyTooLargeError(f"Admin request bodies are limited to {_MAX_BODY} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def _when(value: str | None, param: str) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_when(value, param)
    except ValueError as exc:
        raise BadRequestError(f"Invalid value for '{param}': {exc}.", param=param) from None


def _spec(body: CreateKeyBody) -> KeySpec:
    expires_at = _when(body.expires_at, "expires_at")
    # KeySpec checks names, patterns and ranges and raises a 400 naming the field.
    return KeySpec(
        name=body.name,
        tenant=body.tenant,
        allowed_models=None if body.models is None else frozenset(body.models),
        allowed_regions=None if body.regions is None else frozenset(body.regions),
        rpm=body.rpm,
        tpm=body.tpm,
        budget_usd_daily=body.budget_usd_daily,
        budget_usd_monthly=body.budget_usd_monthly,
        expires_at=expires_at,
        privacy_policy=body.privacy_policy,
        is_admin=body.is_admin,
    )


def _issued(issued: IssuedKey, status: int) -> Response:
    return json_response({"key": issued.key, **issued.info.to_json_dict()}, status, _NO_STORE)


def _query(request: Request) -> dict[str, Any]:
    return dict(request.query_params)


# -- handlers ---------------------------------------------------------------------------


async def create_key(request: Request) -> Response:
    store = await _admin(request)
    spec = _spec(parse_request(CreateKeyBody, await _read_body(request)))
    try:
        issued = await _store_call(lambda: store.create(spec), "key store")
    except BadRequestError as exc:
        if exc.param != "expires":
            raise
        # The store checks expiry against its own clock; name the field as sent.
        raise BadRequestError(
            "Invalid value for 'expires_at': the time is in the past.", param="expires_at"
        ) from None
    _log.info("api_key_created", extra={"key_id": issued.info.id, "tenant": spec.tenant})
    return _issued(issued, 201)


async def list_keys(request: Request) -> Response:
    store = await _admin(request)
    query = parse_request(_ListQuery, _query(request))
    active = query.active in ("true", "1")
    infos = await _store_call(
        lambda: store.list(tenant=query.tenant, include_revoked=not active), "key store"
    )
    return json_response({"object": "list", "data": [i.to_json_dict() for i in infos]})


async def get_key(request: Request) -> Response:
    store = await _admin(request)
    key_id = cast(str, request.path_params["key_id"])
    info = await _store_call(lambda: store.get(key_id), "key store")
    return json_response(info.to_json_dict())


async def rotate_key(request: Request) -> Response:
    store = await _admin(request)
    key_id = cast(str, request.path_params["key_id"])
    issued = await _store_call(lambda: store.rotate(key_id), "key store")
    _log.info("api_key_rotated", extra={"key_id": issued.info.id})
    return _issued(issued, 200)


async def revoke_key(request: Request) -> Response:
    store = await _admin(request)
    key_id = cast(str, request.path_params["key_id"])
    info = await _store_call(lambda: store.revoke(key_id), "key store")
    _log.info("api_key_revoked", extra={"key_id": info.id})
    return json_response(info.to_json_dict())


def _usage_tenant(principal: Principal, asked: str | None) -> str | None:
    """The tenant a report is limited to: an admin's choice, else the caller's own."""
    if principal.is_admin:
        return asked
    if asked is not None and asked != principal.tenant:
        raise PermissionDeniedError(
            "A non-admin key may read only its own tenant's usage.", param="tenant"
        )
    return principal.tenant


async def usage(request: Request) -> Response:
    _mark(request)
    gw = _host(request)
    principal = await gw.authenticate(request)
    query = parse_request(UsageQuery, _query(request))
    since, until = _when(query.since, "since"), _when(query.until, "until")
    if since is not None and until is not None and since >= until:
        raise BadRequestError("'since' must be earlier than 'until'.", param="since")
    tenant = _usage_tenant(principal, query.tenant)
    ledger = gw.ledger
    if ledger is None:
        raise ServiceUnavailableError(
            "Usage reports are not available: this gateway runs without a ledger."
        )
    report = await _store_call(
        lambda: ledger.report(since=since, until=until, by=query.by, tenant=tenant), "ledger"
    )
    return json_response({"tenant": tenant, **report.to_json_dict()})


def admin_routes() -> list[Route]:
    return [
        Route("/admin/keys", create_key, methods=["POST"]),
        Route("/admin/keys", list_keys, methods=["GET"]),
        Route("/admin/keys/{key_id}", get_key, methods=["GET"]),
        Route("/admin/keys/{key_id}", revoke_key, methods=["DELETE"]),
        Route("/admin/keys/{key_id}/rotate", rotate_key, methods=["POST"]),
        Route("/admin/usage", usage, methods=["GET"]),
    ]
