"""``GET /v1/models`` and ``GET /v1/models/{id}``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from airlock.api.gateway import context_of, gateway_of
from airlock.api.responses import json_response
from airlock.errors import ModelNotFoundError
from airlock.protocol.responses import ModelCard, ModelList

__all__ = ["get_model", "list_models"]

_OWNER = "airlock"


def _cards(request: Request, names: list[str]) -> list[ModelCard]:
    created = gateway_of(request).started_at
    return [ModelCard(id=n, created=created, owned_by=_OWNER) for n in names]


async def list_models(request: Request) -> Response:
    gw = gateway_of(request)
    context_of(request).endpoint = "models"
    principal = await gw.authenticate(request)
    names = gw.visible_models(principal)
    return json_response(ModelList(data=_cards(request, names)))


async def get_model(request: Request) -> Response:
    gw = gateway_of(request)
    context_of(request).endpoint = "models"
    principal = await gw.authenticate(request)
    model_id = request.path_params["model_id"]
    if model_id not in gw.visible_models(principal):
        raise ModelNotFoundError(model_id)
    return json_response(_cards(request, [model_id])[0])
