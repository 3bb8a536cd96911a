"""A notebook's typed parameters as JSON Schema (draft 2020-12), for forms and API clients.

The parameter schema's own description (``ParameterSchema.to_dict``) marks a nullable type
with ``nullable: true``; JSON Schema spells that as a union with ``null``, which is what a
form library or a validator reads.
"""

from __future__ import annotations

from typing import Any

from workbench.runs.params import SECRET_PREFIX, ParameterSchema

__all__ = ["DIALECT", "json_schema"]

DIALECT = "https://json-schema.org/draft/2020-12/schema"


def _standard(node: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in node.items() if k != "nullable"}
    if "items" in out and isinstance(out["items"], dict):
        out["items"] = _standard(out["items"])
    if not node.get("nullable"):
        return out
    if "enum" in out:
        out["enum"] = [*out["enum"], None]
    elif "type" in out:
        out["type"] = [out["type"], "null"]
    return out


def json_schema(schema: ParameterSchema, *, title: str = "") -> dict[str, Any]:
    """``schema`` as a JSON Schema object; a ``str`` parameter also accepts ``secret:NAME``."""
    described = schema.to_dict()
    properties = {name: _standard(node) for name, node in described["properties"].items()}
    out: dict[str, Any] = {"$schema": DIALECT, "type": "object"}
    if title:
        out["title"] = title
    out["properties"] = properties
    out["required"] = described["required"]
    out["additionalProperties"] = False
    out["x-workbench-secret-prefix"] = SECRET_PREFIX
    return out
