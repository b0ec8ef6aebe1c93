"""JSON Schema cut down to Gemini's Schema object (an OpenAPI 3.0 subset): unknown keys
stripped and named, local ``$ref`` inlined, nullable unions and ``const`` rewritten.
"""

from __future__ import annotations

from typing import Any

import orjson

from trustgate_proxy.domain.formats.model import Untranslatable

# The keys of Gemini's Schema object (an OpenAPI 3.0 subset); everything else is stripped.
SCHEMA_KEYS = frozenset(
    {
        "type",
        "format",
        "title",
        "description",
        "nullable",
        "enum",
        "items",
        "minItems",
        "maxItems",
        "properties",
        "required",
        "minProperties",
        "maxProperties",
        "minLength",
        "maxLength",
        "pattern",
        "example",
        "anyOf",
        "propertyOrdering",
        "default",
        "minimum",
        "maximum",
    }
)


_TYPES = frozenset({"string", "number", "integer", "boolean", "array", "object", "null"})


def _schema(node: Any, path: str, defs: dict[str, Any], dropped: set[str], depth: int = 0) -> Any:
    """JSON Schema → Gemini's Schema: unknown keys stripped (their paths added to
    ``dropped``), local ``$ref`` inlined, nullable unions and ``const`` rewritten."""
    if not isinstance(node, dict):
        return node
    if depth > 32:
        raise Untranslatable("the JSON schema nests too deep for Gemini")
    ref = node.get("$ref")
    if isinstance(ref, str):
        name = ref.rsplit("/", 1)[-1]
        if not ref.startswith("#/") or name not in defs:
            raise Untranslatable(f"Gemini cannot resolve the schema reference {ref!r}")
        merged = {**defs[name], **{k: v for k, v in node.items() if k != "$ref"}}
        return _schema(merged, path, defs, dropped, depth + 1)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "type":
            types = value if isinstance(value, list) else [value]
            real = [t for t in types if t != "null"]
            if len(real) < len(types):
                out["nullable"] = True
            if len(real) == 1 and isinstance(real[0], str) and real[0] in _TYPES:
                out["type"] = real[0].upper()
            elif len(real) > 1:
                out["anyOf"] = [{"type": str(t).upper()} for t in real]
            elif real:
                dropped.add(f"{path}.type")
        elif key == "const":
            out["enum"] = [value]
        elif key == "oneOf" and isinstance(value, list):
            out["anyOf"] = [_schema(v, f"{path}.oneOf", defs, dropped, depth + 1) for v in value]
        elif key == "anyOf" and isinstance(value, list):
            branches = [b for b in value if not (isinstance(b, dict) and b.get("type") == "null")]
            if len(branches) < len(value):
                out["nullable"] = True
            mapped = [_schema(v, f"{path}.anyOf", defs, dropped, depth + 1) for v in branches]
            if len(mapped) == 1 and isinstance(mapped[0], dict):
                out.update(mapped[0])
            else:
                out["anyOf"] = mapped
        elif key == "properties" and isinstance(value, dict):
            out["properties"] = {
                name: _schema(sub, f"{path}.properties", defs, dropped, depth + 1)
                for name, sub in value.items()
            }
        elif key == "items":
            out["items"] = _schema(value, f"{path}.items", defs, dropped, depth + 1)
        elif key == "enum" and isinstance(value, list):
            out["enum"] = [v if isinstance(v, str) else orjson.dumps(v).decode() for v in value]
            if out.get("type", "STRING") != "STRING":
                out["format"] = "enum"
                out["type"] = "STRING"
        elif key in SCHEMA_KEYS:
            out[key] = value
        elif key not in ("$defs", "definitions"):
            dropped.add(f"{path}.{key}")
    if "enum" in out and "type" not in out:
        out["type"] = "STRING"
    return out


def gemini_schema(schema: dict[str, Any], path: str, dropped: set[str]) -> dict[str, Any]:
    defs: dict[str, Any] = {}
    for key in ("$defs", "definitions"):
        if isinstance(schema.get(key), dict):
            defs.update(schema[key])
    if ("$defs" in schema or "definitions" in schema) and not defs:
        dropped.add(f"{path}.$defs")
    out = _schema(schema, path, defs, dropped)
    return out if isinstance(out, dict) else {}
