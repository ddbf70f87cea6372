"""Pure transforms on JSON Schema dicts: a walker, noise removal, `$ref` inlining, strict mode.

Everything here works on plain dicts produced by pydantic (or given by hand) and returns new
dicts; nothing is mutated in place, so a caller's schema is never altered behind its back.
Every transform is a `visit` function handed to `walk_schema`, which knows the one thing they
all share: where the sub-schemas of a schema are.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sfagent.exceptions import ToolDefinitionError

JSONSchema = dict[str, Any]

NAMED_SCHEMA_MAPS = frozenset({"properties", "$defs", "definitions", "patternProperties"})
"""Keys whose value maps *names* to sub-schemas: a "title" key in them names a property."""

DATA_KEYS = frozenset({"default", "enum", "const", "examples", "example"})
"""Keys whose value is data, not schema: never walked into."""

_REF_PREFIX = "#/$defs/"

Descend = Callable[[JSONSchema], JSONSchema]
"""Rebuilds a schema object with each of its sub-schemas walked."""

Visit = Callable[[JSONSchema, Descend], Any]
"""A transform of one schema object: returns what replaces it (usually `descend(node)`)."""


class SchemaProblem(Exception):
    """Raised by a `Visit` to refuse a schema; `walk_schema` fills in where it is.

    Attributes:
        reason: What is wrong, e.g. "accepts any value".
        where: The location below the walk's root: ``.name`` for each named entry (a property,
            a definition), ``[i]`` for each list item.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.where = ""


def walk_schema(node: Any, visit: Visit) -> Any:
    """Return `node` with `visit` applied to every schema object in it, depth first.

    `visit(schema, descend)` returns what replaces `schema`; `descend(schema)` rebuilds a
    schema object the standard way: values under `DATA_KEYS` copied as they are, maps under
    `NAMED_SCHEMA_MAPS` walked entry by entry (their keys are names, not keywords), every
    other value walked (lists item by item). A transform says only what it changes.
    """

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return visit(value, descend)
        if not isinstance(value, list):
            return value
        items: list[Any] = []
        try:
            for item in value:
                items.append(walk(item))  # noqa: PERF401 - len(items) locates a failure
        except SchemaProblem as problem:
            problem.where = f"[{len(items)}]{problem.where}"
            raise
        return items

    def descend(schema: JSONSchema) -> JSONSchema:
        out: JSONSchema = {}
        name: str | None = None  # the named entry being walked, to locate a failure
        try:
            for key, value in schema.items():
                if key in DATA_KEYS or not isinstance(value, (dict, list)):
                    out[key] = value
                elif key in NAMED_SCHEMA_MAPS and isinstance(value, dict):
                    out[key] = named = {}
                    for name, sub in value.items():
                        named[name] = walk(sub)
                    name = None
                else:
                    out[key] = walk(value)
        except SchemaProblem as problem:
            if name is not None:
                problem.where = f".{name}{problem.where}"
            raise
        return out

    return walk(node)


def strip_titles(schema: Any) -> Any:
    """Return `schema` without the auto-generated `title` annotations pydantic adds everywhere."""

    def visit(node: JSONSchema, descend: Descend) -> Any:
        out = descend(node)
        if isinstance(out.get("title"), str):
            del out["title"]
        return out

    return walk_schema(schema, visit)


def inline_refs(schema: JSONSchema) -> JSONSchema:
    """Inline every `$ref` into `#/$defs/...` except recursive ones.

    Open models follow a flat schema far better than pointers; only a recursive type needs
    `$defs`, and those are kept (and only those).

    Raises:
        ToolDefinitionError: a `$ref` names a definition that does not exist.
    """
    defs: dict[str, Any] = schema.get("$defs", {})
    if not defs:
        return schema
    kept: dict[str, Any] = {}

    def inliner(stack: tuple[str, ...]) -> Visit:
        # `stack`: the definitions being inlined around this point; meeting one again is
        # recursion, so its pointer stays.
        def visit(node: JSONSchema, descend: Descend) -> Any:
            ref = node.get("$ref")
            if not isinstance(ref, str) or not ref.startswith(_REF_PREFIX):
                return descend(node)
            name = ref[len(_REF_PREFIX) :]
            if name not in defs:
                raise ToolDefinitionError(f"schema refers to an undefined definition {ref!r}")
            if name in stack:
                if name not in kept:
                    kept[name] = {}  # placeholder stops endless recursion while building it
                    kept[name] = walk_schema(defs[name], inliner((*stack, name)))
                return node
            siblings = descend({k: v for k, v in node.items() if k != "$ref"})
            return {**walk_schema(defs[name], inliner((*stack, name))), **siblings}

        return visit

    result: JSONSchema = walk_schema({k: v for k, v in schema.items() if k != "$defs"}, inliner(()))
    if kept:
        result["$defs"] = kept
    return result


def make_strict(schema: JSONSchema, *, tool_name: str) -> JSONSchema:
    """Rewrite an object schema to meet OpenAI's strict-mode rules.

    Every object gets `additionalProperties: false` and lists all its properties as required;
    a property that was optional becomes nullable instead. Shapes strict mode cannot express
    (free-form objects such as `dict[str, X]`, untyped values) raise `ToolDefinitionError`.
    """

    def visit(node: JSONSchema, descend: Descend) -> Any:
        if not node or set(node) <= {"description", "default"}:
            raise SchemaProblem(
                "accepts any value (give it a type annotation, or use strict=False)"
            )
        out = descend(node)
        if _is_object(out):
            _close_object(out)
        return out

    try:
        return walk_schema(schema, visit)  # type: ignore[no-any-return]
    except SchemaProblem as problem:
        raise ToolDefinitionError(
            f"tool '{tool_name}' cannot be strict: parameters{problem.where} {problem.reason}"
        ) from None


def _is_object(node: JSONSchema) -> bool:
    kind = node.get("type")
    return kind == "object" or (isinstance(kind, list) and "object" in kind)


def _close_object(node: JSONSchema) -> None:
    extra = node.get("additionalProperties", None)
    if extra not in (None, False) or "patternProperties" in node:
        raise SchemaProblem(
            "is a free-form mapping (strict mode needs every key named in advance; use a model "
            "or TypedDict, or strict=False)"
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
    """Whether `node` (or one of its `anyOf` options) accepts `null`."""
    kind = node.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return True
    return any(isinstance(opt, dict) and _allows_null(opt) for opt in node.get("anyOf", ()))


def drop_default_nulls(value: Any, loose_schema: JSONSchema) -> Any:
    """Remove `null`s that strict mode made the model send for "not given".

    Strict mode turns an optional parameter into a required, nullable one, so the model sends
    `null` for "use the default". Where the original (loose) schema did not allow `null`, the
    key is dropped so the default applies; everything else is left as it came.
    """
    return _drop_nulls(value, loose_schema, loose_schema.get("$defs", {}))


def _drop_nulls(value: Any, schema: Any, defs: dict[str, Any]) -> Any:
    if isinstance(value, list):
        # A tuple's positions have their own schemas (prefixItems); what follows them, items.
        array = _find_schema(schema, "prefixItems", defs) or _find_schema(schema, "items", defs)
        if array is None:
            return value
        prefix, rest = array.get("prefixItems", []), array.get("items")
        return [
            _drop_nulls(v, prefix[i] if i < len(prefix) else rest, defs)
            for i, v in enumerate(value)
        ]
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
