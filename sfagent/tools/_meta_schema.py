"""The meta-schema check: is a tool's `parameters` valid JSON Schema (draft 2020-12)?

Checked once per tool, when it is defined, so the cost is paid at import time of the user's
module: the official meta-schema is flattened into one document (about six times faster to
check against), and shapes already found valid are remembered for the process.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from sfagent.exceptions import ToolDefinitionError
from sfagent.tools._json_schema import (
    NAMED_SCHEMA_MAPS,
    Descend,
    JSONSchema,
    walk_schema,
)

_SPEC = "https://json-schema.org/draft/2020-12/"
_CROSS_REF = re.compile(r"^meta/([a-z-]+)#/\$defs/(.+)$")
_LOCAL_REF = "#/$defs/"

# Shapes already found valid. Validity against the meta-schema does not depend on property
# names or on the text of annotations, so those are blanked out of the key: tools that share
# parameter shapes (a string, an integer with bounds...) are meta-checked once per process.
_VALID_SHAPES: set[str] = set()
_BLANKED = {"description": "", "title": "", "$comment": "", "pattern": "", "default": None}
_MAX_CACHED_SHAPES = 4096


def check_meta_schema(schema: JSONSchema, *, tool_name: str) -> None:
    """Raise `ToolDefinitionError` unless `schema` is valid JSON Schema (draft 2020-12)."""
    if schema.get("type") != "object":
        raise ToolDefinitionError(
            f"tool '{tool_name}' parameters must be a JSON schema of type 'object', "
            f"got type {schema.get('type')!r}"
        )
    # Each property (and definition) is checked on its own, then the root with them stubbed:
    # the meta-schema applies itself to every sub-schema independently, so this is equivalent.
    root = dict(schema)
    for key in ("properties", "$defs"):
        named = schema.get(key)
        if isinstance(named, dict):
            for name, sub in named.items():
                _check_shape(sub, where=f"{key}/{name}", tool_name=tool_name)
            root[key] = {name: {} for name in named}
    _check_shape(root, where="", tool_name=tool_name)


def _check_shape(schema: Any, *, where: str, tool_name: str) -> None:
    # repr, not json.dumps: twice as fast, and it tells apart what str() would merge.
    key = repr(_shape(schema))
    if key in _VALID_SHAPES:
        return
    from jsonschema.exceptions import best_match

    error = best_match(meta_validator().iter_errors(schema))
    if error is not None:
        inner = "/".join(str(p) for p in error.absolute_path)
        at = "/".join(p for p in (where, inner) if p) or "(root)"
        raise ToolDefinitionError(
            f"tool '{tool_name}' has an invalid JSON schema at {at}: {error.message}"
        )
    if len(_VALID_SHAPES) < _MAX_CACHED_SHAPES:
        _VALID_SHAPES.add(key)


class _Stub:
    """Stands in a shape for what was left out; no schema value equals it, nor its repr."""

    def __init__(self, text: str) -> None:
        self._text = text

    def __repr__(self) -> str:
        return f"<{self._text}>"


_NAMED = _Stub("named sub-schemas")
_UNIQUE = _Stub("unique names")
_REPEATED = _Stub("repeated names")


def _shape(schema: Any) -> Any:
    """`schema` with what cannot affect meta-validity blanked: names, texts, data.

    What a key is replaced by must not be a value the key could hold itself: an invalid
    ``"required": true`` must not share the shape of a valid list of names.
    """

    def visit(node: JSONSchema, descend: Descend) -> Any:
        out = descend(node)
        for key, value in out.items():  # values are replaced, never keys: safe while iterating
            if key in ("default", "const"):
                out[key] = None  # any value is valid here
            elif key in _BLANKED and isinstance(value, str):
                out[key] = _BLANKED[key]
            elif key in ("enum", "examples") and isinstance(value, list):
                out[key] = []  # any list is valid here
            elif key in NAMED_SCHEMA_MAPS and isinstance(value, dict):
                out[key] = (_NAMED, *value.values())  # names dropped, order kept
            elif key == "required" and _all_strings(value):
                out[key] = _UNIQUE if len(set(value)) == len(value) else _REPEATED
        return out

    return walk_schema(schema, visit)


def _all_strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


@functools.lru_cache(maxsize=1)
def meta_validator() -> Any:
    """A validator for the draft 2020-12 meta-schema, built once.

    The official meta-schema is seven vocabulary documents joined by ``$dynamicRef``, which
    jsonschema resolves through its registry at every sub-schema: about 2 ms per tool schema.
    The same rules flattened into one document (each ``$dynamicRef: "#meta"`` becomes
    ``$ref: "#"``, each vocabulary's ``$defs`` get a prefix) check about six times faster.
    A test keeps both in agreement; if the specification data ever looks different, the
    official meta-schema is used as is.
    """
    from jsonschema import Draft202012Validator

    official = Draft202012Validator(Draft202012Validator.META_SCHEMA)
    try:
        flat = Draft202012Validator(_flat_meta_schema())
        sane = flat.is_valid({"type": "object"}) and not flat.is_valid({"type": 3})
    except Exception:  # the specification data changed shape: stay correct, not fast
        return official
    return flat if sane else official


def _flat_meta_schema() -> JSONSchema:
    from jsonschema_specifications import REGISTRY

    root = REGISTRY[_SPEC + "schema"].contents
    properties: dict[str, Any] = {}
    definitions: dict[str, Any] = {}
    for part in root["allOf"]:
        vocabulary = REGISTRY[_SPEC + part["$ref"]].contents
        prefix = _prefix(part["$ref"].rsplit("/", 1)[-1])
        flat = _flatten(vocabulary, prefix)
        _merge(properties, flat.get("properties", {}))
        definitions.update({prefix + n: d for n, d in flat.get("$defs", {}).items()})
    _merge(properties, _flatten(root.get("properties", {}), "root__"))
    return {"type": ["object", "boolean"], "properties": properties, "$defs": definitions}


def _prefix(vocabulary: str) -> str:
    return vocabulary.replace("-", "_") + "__"


def _merge(into: dict[str, Any], new: dict[str, Any]) -> None:
    for name, schema in new.items():
        if name in into:
            raise ValueError(f"keyword {name!r} is defined by two vocabularies")
        into[name] = schema


def _flatten(schema: Any, prefix: str) -> Any:
    """One vocabulary's pointers rewritten to work inside the single flat document."""

    def visit(node: JSONSchema, descend: Descend) -> Any:
        out: JSONSchema = {}
        for key, value in node.items():
            if key == "$dynamicRef" and value == "#meta":
                key, value = "$ref", "#"  # the whole (flat) meta-schema
            elif key == "$ref" and isinstance(value, str):
                value = _flat_ref(value, prefix)
            out[key] = value
        return descend(out)

    return walk_schema(schema, visit)


def _flat_ref(ref: str, prefix: str) -> str:
    if ref.startswith(_LOCAL_REF):
        return _LOCAL_REF + prefix + ref[len(_LOCAL_REF) :]
    cross = _CROSS_REF.match(ref)  # another vocabulary's definition
    return _LOCAL_REF + _prefix(cross[1]) + cross[2] if cross else ref
