"""The `parameters` schema of common signatures, written in one pass without building a class.

Generating a schema through pydantic means building a class for the arguments, its core schema,
then walking that into JSON: about 1.5 ms a tool, most of the cost of defining one. For the
shapes tools use most, this module writes the same JSON directly, each rule mirroring the
`GenerateJsonSchema` method named beside it (then `strip_titles` and `inline_refs`, as the
pydantic path applies them):

- `str`, `int`, `float`, `bool`, `None`, `Any` (or no annotation), `date`, `datetime`, `time`,
  `UUID`, `Path`; `Literal` of str/int/bool/None; `Enum` classes with str or int values;
- `list`, `Sequence`, `set`, `frozenset`, `tuple` (fixed or `...`) and `dict[str, ...]` of
  those; `Optional` and unions; pydantic models (their schema is pydantic's, made once per
  class), unless recursive;
- `Annotated[..., Field(...)]` with a description and numeric, length or pattern constraints;
  defaults that are JSON-like values or enum members.

Anything else (a parameter named `default` or `properties` included, whose schema pydantic
leaves unsorted) makes `fast_parameters` return ``None``, and the tool takes the pydantic path.
The validator is the pydantic class either way, built from the same `ParamDef`s; these rules
only say how pydantic would render them. `sfagent.tools._fast_check` holds them to it (a canary
compared once per process, and in the tests every tool), and tests/tools/test_fast_schema.py
compares both paths byte for byte over generated signatures.
"""

from __future__ import annotations

import collections.abc
import contextlib
import datetime as dt
import enum
import functools
import inspect
import math
import pathlib
import types
import uuid
import weakref
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from sfagent.tools._json_schema import JSONSchema, inline_refs, strip_titles
from sfagent.tools._pydantic_schema import REQUIRED, ParamDef, ToolJsonSchema


class Unsupported(Exception):
    """Internal: a shape these rules do not cover; the pydantic path renders it."""


# A schema node, and whether it is an inlined definition (an enum or a model): pydantic puts
# those in `$defs` and writes their uses as `{"$ref": ..., <siblings>}`, so once inlined the
# definition's keys come first, then the siblings; every other node has its keys sorted.
_Node = tuple[JSONSchema, bool]

_LEAVES: dict[Any, JSONSchema] = {
    str: {"type": "string"},  # str_schema
    int: {"type": "integer"},  # int_schema
    float: {"type": "number"},  # float_schema
    bool: {"type": "boolean"},  # bool_schema
    type(None): {"type": "null"},  # none_schema
    None: {"type": "null"},
    Any: {},  # any_schema
    dt.datetime: {"format": "date-time", "type": "string"},  # _common_temporal_schema
    dt.date: {"format": "date", "type": "string"},
    dt.time: {"format": "time", "type": "string"},
    uuid.UUID: {"format": "uuid", "type": "string"},  # uuid_schema
    pathlib.Path: {"format": "path", "type": "string"},  # path_schema
}
_NULL: JSONSchema = {"type": "null"}
_UNIONS = (Union, types.UnionType)
_ARRAYS = (list, collections.abc.Sequence)
_SETS = (set, frozenset)
# ValidationsMapping: the constraints each kind of node takes, and their JSON names.
_NUMERIC = {"ge": "minimum", "gt": "exclusiveMinimum", "le": "maximum", "lt": "exclusiveMaximum",
            "multiple_of": "multipleOf"}  # fmt: skip
_STRING = {"min_length": "minLength", "max_length": "maxLength", "pattern": "pattern"}
_ARRAY = {"min_length": "minItems", "max_length": "maxItems"}
_OBJECT = {"min_length": "minProperties", "max_length": "maxProperties"}
_UNSORTED_UNDER = ("properties", "default")  # GenerateJsonSchema.sort leaves these keys' dicts
_REF_TEXT = "#/$defs/"  # strings pydantic's definitions remapping may rewrite
_I64 = 2**63


def fast_parameters(params: tuple[ParamDef, ...], *, forbid_extra: bool) -> JSONSchema | None:
    """The schema `model_parameters` would make of these parameters, or ``None`` if not covered.

    Args:
        params: The parameters the model fills, in signature order.
        forbid_extra: The arguments class forbids unknown keys (strict tools).
    """
    try:
        properties = {p.name: _property(p) for p in params}
    except Unsupported:
        return None
    # model_schema: sorted keys, the title left out (strip_titles drops it)
    schema: JSONSchema = {}
    if forbid_extra:
        schema["additionalProperties"] = False
    schema["properties"] = properties
    required = [p.name for p in params if p.default is REQUIRED]
    if required:
        schema["required"] = required
    schema["type"] = "object"
    return schema


def _property(param: ParamDef) -> JSONSchema:
    # model_fields_schema: the field's type, its Field constraints, default and description.
    if param.name in _UNSORTED_UNDER:
        raise Unsupported
    base, info = _split_annotated(param.annotation)
    node, is_ref = _node(base)
    extras = _constraints(info, base, is_ref) if info is not None else {}
    if param.default is not REQUIRED:
        extras["default"] = _pydantic_order(_encode_default(param.default, top=True), "default")
    if "description" not in extras and param.doc:
        extras["description"] = _text(param.doc)  # the docstring's, unless Field gave one
    return _with(node, is_ref, extras)


def _node(annotation: Any) -> _Node:
    try:
        leaf = _LEAVES.get(annotation)
    except Exception:  # unhashable, or an odd __eq__: not a shape of ours
        raise Unsupported from None
    if leaf is not None:
        return dict(leaf), False
    origin = get_origin(annotation)
    if origin is Annotated:
        base, info = _split_annotated(annotation)
        node, is_ref = _node(base)
        extras = _constraints(info, base, is_ref) if info is not None else {}
        return _with(node, is_ref, extras), is_ref
    if origin is Literal:
        return _literal(get_args(annotation)), False
    if origin in _UNIONS:
        return _union(get_args(annotation)), False
    if origin is not None:
        return _container(origin, get_args(annotation)), False
    if annotation is list or annotation is dict:
        return _container(annotation, ()), False
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return _copy_json(_enum(annotation)), True
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _copy_json(_model(annotation)), True
    raise Unsupported


def _with(node: JSONSchema, is_ref: bool, extras: JSONSchema) -> JSONSchema:
    if is_ref:  # the definition's keys, then the `$ref`'s siblings, sorted among themselves
        out = dict(node)
        for key in sorted(extras):
            out[key] = extras[key]
        return out
    merged = {**node, **extras}
    return {key: merged[key] for key in sorted(merged)}


def _split_annotated(annotation: Any) -> tuple[Any, FieldInfo | None]:
    if get_origin(annotation) is not Annotated:
        return annotation, None
    base, *metadata = get_args(annotation)
    if len(metadata) != 1 or not isinstance(metadata[0], FieldInfo):
        raise Unsupported  # several FieldInfos merge, other metadata may validate: pydantic's
    return base, _plain_field_info(metadata[0])


@functools.lru_cache(maxsize=1)
def _blank_field_info() -> dict[str, Any]:
    from pydantic import Field

    blank = Field()
    return {name: getattr(blank, name) for name in _public_slots()}


def _public_slots() -> list[str]:
    slots = getattr(FieldInfo, "__slots__", ())
    return [s for s in slots if not s.startswith("_") and s not in ("description", "metadata")]


def _plain_field_info(info: FieldInfo) -> FieldInfo:
    """`info` if it sets nothing but a description and constraints, else `Unsupported`."""
    blank = _blank_field_info()
    if not blank or any(getattr(info, name) != value for name, value in blank.items()):
        raise Unsupported
    description = info.description
    if description is not None and not (isinstance(description, str) and description):
        raise Unsupported
    if description is not None:
        _text(description)
    return info


def _constraints(info: FieldInfo, base: Any, is_ref: bool) -> JSONSchema:
    """update_with_validations: `info`'s description, and its constraints as `base` names them.

    Only values pydantic builds a validator with: the validator is built on the first call,
    so a value it would refuse must send the tool down the pydantic path, which refuses it
    when the tool is defined.
    """
    extras: JSONSchema = {}
    if info.description is not None:
        extras["description"] = info.description
    mapping = None if is_ref else _constraint_names(base)
    for item in info.metadata:
        for key, value in _constraint_values(item).items():
            if mapping is None or key not in mapping or not _buildable(key, value, base):
                raise Unsupported
            extras[mapping[key]] = value
    return extras


def _constraint_names(base: Any) -> dict[str, str] | None:
    if base is int or base is float:
        return _NUMERIC
    if base is str:
        return _STRING
    origin = get_origin(base) or base
    if origin in (list, set, frozenset):
        return _ARRAY
    if origin is dict:
        return _OBJECT
    return None  # Sequence, tuple, unions...: pydantic applies these its own ways


def _constraint_values(item: Any) -> dict[str, Any]:
    name = type(item).__name__
    known = {"Ge", "Gt", "Le", "Lt", "MultipleOf", "MinLen", "MaxLen", "_PydanticGeneralMetadata"}
    if name not in known:
        raise Unsupported
    slots = getattr(type(item), "__slots__", ())
    values = dict(vars(item)) if hasattr(item, "__dict__") else {}
    values.update({s: getattr(item, s) for s in slots if hasattr(item, s)})
    if not values:
        raise Unsupported
    return values


def _buildable(key: str, value: Any, base: Any) -> bool:
    kind = type(value)
    if key == "pattern":
        return kind is str and not value.startswith(_REF_TEXT) and _compiles(value)
    if key in ("min_length", "max_length"):
        return kind is int and 0 <= value < _I64
    if kind is not int and (base is int or kind is not float or not math.isfinite(value)):
        return False  # an int's bounds must be ints; bools and infinities are not bounds
    return bool(-_I64 < value < _I64) and (key != "multiple_of" or value > 0)


@functools.lru_cache(maxsize=512)
def _compiles(pattern: str) -> bool:
    from pydantic_core import SchemaError, SchemaValidator, core_schema

    try:  # the regex engine the arguments class uses, on this pattern alone
        SchemaValidator(core_schema.str_schema(pattern=pattern))
    except SchemaError:
        return False
    return True


def _literal(values: tuple[Any, ...]) -> JSONSchema:
    # literal_schema
    for value in values:
        if value is not None and type(value) not in (str, int, bool):
            raise Unsupported
        if isinstance(value, str):
            _text(value)
    expected = list(values)
    result: JSONSchema = {"const": expected[0]} if len(expected) == 1 else {"enum": expected}
    kinds = {type(v) for v in expected}
    names = {str: "string", int: "integer", bool: "boolean", type(None): "null"}
    if len(kinds) == 1:
        result["type"] = names[kinds.pop()]
    return result


def _union(args: tuple[Any, ...]) -> JSONSchema:
    # _union_schema (None moves out into a nullable wrapper), union_schema, nullable_schema
    choices = [a for a in args if a is not type(None)]
    nodes = [_node(choice)[0] for choice in choices]
    inner = nodes[0] if len(nodes) == 1 else _any_of(nodes)
    if len(choices) == len(args):
        return inner
    if inner == _NULL:
        return dict(_NULL)
    return _any_of([inner, dict(_NULL)])


def _any_of(schemas: list[JSONSchema]) -> JSONSchema:
    # get_flattened_anyof: nested bare anyOfs flattened, duplicates dropped (the first place,
    # the last copy: a dict keyed by a hashable form, as _deduplicate_schemas does)
    members: list[JSONSchema] = []
    for schema in schemas:
        if len(schema) == 1 and "anyOf" in schema:
            members.extend(schema["anyOf"])
        else:
            members.append(schema)
    unique = list({_hashable(m): m for m in members}.values())
    return unique[0] if len(unique) == 1 else {"anyOf": unique}


def _hashable(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    return value


def _container(origin: Any, args: tuple[Any, ...]) -> JSONSchema:
    if origin in _ARRAYS and len(args) <= 1 and (args or origin is list):
        items = _node(args[0])[0] if args else {}
        return {"items": items, "type": "array"}  # list_schema
    if origin in _SETS and len(args) == 1:
        return {"items": _node(args[0])[0], "type": "array", "uniqueItems": True}
    if origin is tuple and args:  # tuple_schema; `tuple[()]` and a bare Tuple look alike
        if len(args) == 2 and args[1] is Ellipsis:
            return {"items": _node(args[0])[0], "type": "array"}
        if Ellipsis in args:
            raise Unsupported
        prefix = [_node(arg)[0] for arg in args]
        return {"maxItems": len(prefix), "minItems": len(prefix), "prefixItems": prefix,
                "type": "array"}  # fmt: skip
    if origin is dict and (not args or (len(args) == 2 and args[0] is str)):
        values = _node(args[1])[0] if args else {}
        return {"additionalProperties": values or True, "type": "object"}  # _common_dict_schema
    raise Unsupported


_ENUMS: weakref.WeakKeyDictionary[type, JSONSchema] = weakref.WeakKeyDictionary()
_MODELS: weakref.WeakKeyDictionary[type, JSONSchema | None] = weakref.WeakKeyDictionary()


def _enum(cls: type[enum.Enum]) -> JSONSchema:
    # GenerateSchema._enum_schema and enum_schema; the title goes with strip_titles
    cached = _ENUMS.get(cls)
    if cached is not None:
        return cached
    if issubclass(cls, enum.Flag) or cls.__name__ in _UNSORTED_UNDER or _customised(cls):
        raise Unsupported
    values = [member.value for member in cls.__members__.values()]
    kinds = {type(v) for v in values}
    if kinds not in ({str}, {int}):
        raise Unsupported
    for value in values:
        if isinstance(value, str):
            _text(value)
    description = None if not cls.__doc__ else inspect.cleandoc(cls.__doc__)
    schema: JSONSchema = {}
    if description is not None and description != "An enumeration.":
        schema["description"] = _text(description)
    schema["enum"] = values
    schema["type"] = "string" if kinds == {str} else "integer"
    _ENUMS[cls] = schema
    return schema


def _customised(cls: type) -> bool:
    return hasattr(cls, "__get_pydantic_core_schema__") or hasattr(
        cls, "__get_pydantic_json_schema__"
    )


def _model(cls: type[BaseModel]) -> JSONSchema:
    # A model is a definition pydantic generates the same way wherever it is used: its own
    # schema, made by pydantic once per class, is what inlining its `$ref` yields.
    if cls in _MODELS:
        cached = _MODELS[cls]
    else:
        cached = _model_schema(cls)
        _MODELS[cls] = cached
    if cached is None:
        raise Unsupported
    return cached


def _model_schema(cls: type[BaseModel]) -> JSONSchema | None:
    if cls.__name__ in _UNSORTED_UNDER:
        return None
    try:
        schema = inline_refs(strip_titles(cls.model_json_schema(schema_generator=ToolJsonSchema)))
    except Exception:  # whatever it is, the pydantic path reports it
        return None
    return None if "$defs" in schema else schema  # recursive: its `$defs` are the tool's


def _encode_default(value: Any, *, top: bool = False) -> Any:
    """encode_default (and default_schema's sorting of a set) for JSON-like values."""
    kind = type(value)
    if value is None or kind is bool or kind is int:
        return value
    if kind is str:
        return _text(value)
    if kind is float and math.isfinite(value):
        return value
    if isinstance(value, enum.Enum) and not isinstance(value, enum.Flag):
        if type(value.value) in (str, int):
            return _encode_default(value.value)
    elif kind in (list, tuple):
        return [_encode_default(item) for item in value]
    elif kind in (set, frozenset):
        items = list(value)
        if top and len(items) > 1:
            with contextlib.suppress(TypeError):  # unorderable: kept in iteration order
                items = sorted(value)
        return [_encode_default(item) for item in items]
    elif kind is dict and all(type(k) is str and k not in ("$ref", "$defs") for k in value):
        return {key: _encode_default(item) for key, item in value.items()}
    raise Unsupported


def _pydantic_order(value: Any, parent_key: str | None) -> Any:
    """GenerateJsonSchema.sort, applied to a value it reaches under `parent_key`."""
    if isinstance(value, dict):
        keys = value if parent_key in _UNSORTED_UNDER else sorted(value)
        return {key: _pydantic_order(value[key], key) for key in keys}
    if isinstance(value, list):
        return [_pydantic_order(item, parent_key) for item in value]
    return value


def _text(value: str) -> str:
    if value.startswith(_REF_TEXT):
        raise Unsupported  # pydantic's remapping of definition names could rewrite it
    return value


def _copy_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _copy_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy_json(item) for item in value]
    return value
