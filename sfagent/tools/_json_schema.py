"""Pure transforms on JSON Schema dicts: noise removal, `$ref` inlining, strict mode, meta-check.

Everything here works on plain dicts produced by pydantic (or given by hand) and returns new
dicts; nothing is mutated in place, so a caller's schema is never altered behind its back.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

from sfagent.exceptions import ToolDefinitionError

JSONSchema = dict[str, Any]

# Keys whose value is a map of *names* to sub-schemas: a "title" key inside them is a property
# called "title", not an annotation, and must survive.
_NAMED_SCHEMA_MAPS = frozenset({"properties", "$defs", "definitions", "patternProperties"})
# Keys whose value is data, not schema: never walk into them.
_DATA_KEYS = frozenset({"default", "enum", "const", "examples", "example"})

_REF_PREFIX = "#/$defs/"


def strip_titles(schema: Any) -> Any:
    """Return `schema` without the auto-generated `title` annotations pydantic adds everywhere."""
    if isinstance(schema, list):
        return [strip_titles(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: JSONSchema = {}
    for key, value in schema.items():
        if key == "title" and isinstance(value, str):
            continue
        if key in _DATA_KEYS:
            out[key] = value
        elif key in _NAMED_SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: strip_titles(sub) for name, sub in value.items()}
        else:
            out[key] = strip_titles(value)
    return out


def inline_refs(schema: JSONSchema) -> JSONSchema:
    """Inline every `$ref` into `#/$defs/...` except recursive ones.

    Open models follow a flat schema far better than pointers; only a recursive type needs
    `$defs`, and those are kept (and only those).
    """
    defs: dict[str, Any] = schema.get("$defs", {})
    if not defs:
        return schema
    kept: dict[str, Any] = {}
    body = {k: v for k, v in schema.items() if k != "$defs"}
    result = _inline(body, defs, (), kept)
    if kept:
        result["$defs"] = kept
    return result  # type: ignore[no-any-return]


def _inline(node: Any, defs: dict[str, Any], stack: tuple[str, ...], kept: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_inline(item, defs, stack, kept) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith(_REF_PREFIX):
        name = ref[len(_REF_PREFIX) :]
        if name not in defs:
            raise ToolDefinitionError(f"schema refers to an undefined definition {ref!r}")
        if name in stack:
            # Recursive: keep the pointer and the (inlined) definition it points to.
            if name not in kept:
                kept[name] = {}  # placeholder stops endless recursion while building it
                kept[name] = _inline(defs[name], defs, (*stack, name), kept)
            return node
        siblings = {k: _inline(v, defs, stack, kept) for k, v in node.items() if k != "$ref"}
        target = _inline(defs[name], defs, (*stack, name), kept)
        return {**target, **siblings}
    out: JSONSchema = {}
    for key, value in node.items():
        if key in _DATA_KEYS:
            out[key] = value
        elif key in _NAMED_SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {n: _inline(sub, defs, stack, kept) for n, sub in value.items()}
        else:
            out[key] = _inline(value, defs, stack, kept)
    return out


def make_strict(schema: JSONSchema, *, tool_name: str) -> JSONSchema:
    """Rewrite an object schema to meet OpenAI's strict-mode rules.

    Every object gets `additionalProperties: false` and lists all its properties as required;
    a property that was optional becomes nullable instead. Shapes strict mode cannot express
    (free-form objects such as `dict[str, X]`, untyped values) raise `ToolDefinitionError`.
    """
    return _strict(schema, path="parameters", tool_name=tool_name)  # type: ignore[no-any-return]


def _strict(node: Any, *, path: str, tool_name: str) -> Any:
    if isinstance(node, list):
        return [
            _strict(item, path=f"{path}[{i}]", tool_name=tool_name) for i, item in enumerate(node)
        ]
    if not isinstance(node, dict):
        return node
    if not node or set(node) <= {"description", "default"}:
        raise ToolDefinitionError(
            f"tool '{tool_name}' cannot be strict: {path} accepts any value "
            "(give it a type annotation, or use strict=False)"
        )
    out: JSONSchema = {}
    for key, value in node.items():
        if key in _DATA_KEYS:
            out[key] = value
        elif key in _NAMED_SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {
                n: _strict(sub, path=f"{path}.{n}", tool_name=tool_name) for n, sub in value.items()
            }
        else:
            out[key] = _strict(value, path=path, tool_name=tool_name)
    if _is_object(out):
        _close_object(out, path=path, tool_name=tool_name)
    return out


def _is_object(node: JSONSchema) -> bool:
    kind = node.get("type")
    return kind == "object" or (isinstance(kind, list) and "object" in kind)


def _close_object(node: JSONSchema, *, path: str, tool_name: str) -> None:
    extra = node.get("additionalProperties", None)
    if extra not in (None, False) or "patternProperties" in node:
        raise ToolDefinitionError(
            f"tool '{tool_name}' cannot be strict: {path} is a free-form mapping "
            "(strict mode needs every key named in advance; use a model or TypedDict, "
            "or strict=False)"
        )
    properties: dict[str, Any] = node.setdefault("properties", {})
    required = set(node.get("required", ()))
    for name, sub in properties.items():
        if name not in required:
            properties[name] = _nullable(sub)
    node["required"] = list(properties)
    node["additionalProperties"] = False


def _nullable(node: JSONSchema) -> JSONSchema:
    if _allows_null(node):
        return node
    kind = node.get("type")
    if "const" in node:
        return _any_of_null(node)
    if "enum" in node:
        # A null type alone would still fail the enum: null must be one of its values too.
        node = {**node, "enum": [*node["enum"], None]}
    if isinstance(kind, str):
        return {**node, "type": [kind, "null"]}
    if isinstance(kind, list):
        return {**node, "type": [*kind, "null"]}
    if "anyOf" in node:
        return {**node, "anyOf": [*node["anyOf"], {"type": "null"}]}
    return _any_of_null(node)


def _any_of_null(node: JSONSchema) -> JSONSchema:
    annotations: JSONSchema = {k: node[k] for k in ("description", "default") if k in node}
    core = {k: v for k, v in node.items() if k not in annotations}
    return {"anyOf": [core, {"type": "null"}], **annotations}


def _allows_null(node: JSONSchema) -> bool:
    kind = node.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return True
    return any(isinstance(opt, dict) and _allows_null(opt) for opt in node.get("anyOf", ()))


@functools.lru_cache(maxsize=1)
def _meta_validator() -> Any:
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


_SPEC = "https://json-schema.org/draft/2020-12/"
_CROSS_REF = re.compile(r"^meta/([a-z-]+)#/\$defs/(.+)$")


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


def _flatten(node: Any, prefix: str) -> Any:
    if isinstance(node, list):
        return [_flatten(item, prefix) for item in node]
    if not isinstance(node, dict):
        return node
    out: JSONSchema = {}
    for key, value in node.items():
        if key == "$dynamicRef" and value == "#meta":
            out["$ref"] = "#"
        elif key == "$ref" and isinstance(value, str) and value.startswith("#/$defs/"):
            out["$ref"] = "#/$defs/" + prefix + value[len("#/$defs/") :]
        elif key == "$ref" and isinstance(value, str) and _CROSS_REF.match(value):
            vocabulary, name = _CROSS_REF.match(value).groups()  # type: ignore[union-attr]
            out["$ref"] = "#/$defs/" + _prefix(vocabulary) + name
        elif key in _NAMED_SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: _flatten(sub, prefix) for name, sub in value.items()}
        else:
            out[key] = _flatten(value, prefix)
    return out


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
    key = json.dumps(_shape(schema), sort_keys=True, default=str)
    if key in _VALID_SHAPES:
        return
    from jsonschema.exceptions import best_match

    error = best_match(_meta_validator().iter_errors(schema))
    if error is not None:
        inner = "/".join(str(p) for p in error.absolute_path)
        at = "/".join(p for p in (where, inner) if p) or "(root)"
        raise ToolDefinitionError(
            f"tool '{tool_name}' has an invalid JSON schema at {at}: {error.message}"
        )
    if len(_VALID_SHAPES) < _MAX_CACHED_SHAPES:
        _VALID_SHAPES.add(key)


def _shape(node: Any) -> Any:
    """`node` with what cannot affect meta-validity blanked: names, texts, defaults."""
    if isinstance(node, list):
        return [_shape(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "default" or (key in _BLANKED and isinstance(value, str)):
            out[key] = _BLANKED[key]
        elif key in ("enum", "examples") and isinstance(value, list):
            out[key] = []
        elif key == "const":
            out[key] = None
        elif key in _NAMED_SCHEMA_MAPS and isinstance(value, dict):
            out[key] = [_shape(sub) for sub in value.values()]  # names dropped, order kept
        elif (
            key == "required" and isinstance(value, list) and all(isinstance(v, str) for v in value)
        ):
            out[key] = len(set(value)) == len(value)  # only uniqueness matters
        else:
            out[key] = _shape(value)
    return out


def drop_default_nulls(value: Any, loose_schema: JSONSchema) -> Any:
    """Remove `null`s that strict mode made the model send for "not given".

    Strict mode turns an optional parameter into a required, nullable one, so the model sends
    `null` for "use the default". Where the original (loose) schema did not allow `null`, the
    key is dropped so the default applies; everything else is left as it came.
    """
    return _drop_nulls(value, loose_schema, loose_schema.get("$defs", {}))


def _drop_nulls(value: Any, schema: Any, defs: dict[str, Any]) -> Any:
    if isinstance(value, list):
        array = _find_schema(schema, "items", defs)
        if array is None:
            return value
        return [_drop_nulls(v, array["items"], defs) for v in value]
    if not isinstance(value, dict):
        return value
    obj = _find_schema(schema, "properties", defs)
    if obj is None:
        return value
    properties: dict[str, Any] = obj.get("properties", {})
    required = set(obj.get("required", ()))
    out = {}
    for key, item in value.items():
        prop = properties.get(key)
        if (
            item is None
            and prop is not None
            and key not in required
            and not _allows_null(_resolve(prop, defs))
        ):
            continue  # "not given": let the parameter's default apply
        out[key] = _drop_nulls(item, prop, defs) if prop is not None else item
    return out


def _resolve(schema: Any, defs: dict[str, Any]) -> Any:
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith(_REF_PREFIX):
            return defs.get(ref[len(_REF_PREFIX) :], {})
    return schema


def _find_schema(schema: Any, keyword: str, defs: dict[str, Any]) -> JSONSchema | None:
    """The schema (itself or one of its `anyOf` options) that has `keyword`."""
    schema = _resolve(schema, defs)
    if not isinstance(schema, dict):
        return None
    if keyword in schema:
        return schema
    for option in schema.get("anyOf", ()):
        found = _find_schema(option, keyword, defs)
        if found is not None:
            return found
    return None
