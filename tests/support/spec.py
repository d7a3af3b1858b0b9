"""Validate real responses against OpenAI's official OpenAPI schemas (../shared/spec)."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012 as _DRAFT

SPEC = Path(__file__).resolve().parents[3] / "shared" / "spec" / "openai-openapi.json"


def _nullable_to_type(node: Any) -> Any:
    """The spec mixes OpenAPI 3.0's ``nullable: true`` into 3.1 schemas; make it JSON Schema."""
    if isinstance(node, dict):
        out = {k: _nullable_to_type(v) for k, v in node.items() if k != "nullable"}
        if node.get("nullable") is True:
            if "type" in out and isinstance(out["type"], str):
                out["type"] = [out["type"], "null"]
            elif "$ref" in out or "anyOf" in out or "oneOf" in out or "allOf" in out:
                out = {"anyOf": [out, {"type": "null"}]}
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
        return out
    if isinstance(node, list):
        return [_nullable_to_type(v) for v in node]
    return node


@functools.cache
def _spec() -> dict[str, Any]:
    spec: dict[str, Any] = _nullable_to_type(json.loads(SPEC.read_text(encoding="utf-8")))
    return spec


@functools.cache
def validator(schema_name: str) -> Draft202012Validator:
    spec = _spec()
    registry: Registry = Registry().with_resource(
        "urn:openai-spec", Resource.from_contents(spec, default_specification=_DRAFT)
    )
    schema = {"$ref": f"urn:openai-spec#/components/schemas/{schema_name}"}
    return Draft202012Validator(schema, registry=registry)


def assert_valid(instance: Any, schema_name: str) -> None:
    errors = sorted(validator(schema_name).iter_errors(instance), key=lambda e: list(e.path))
    assert not errors, f"{schema_name}: " + "; ".join(
        f"{list(e.path)}: {e.message}" for e in errors[:5]
    )
