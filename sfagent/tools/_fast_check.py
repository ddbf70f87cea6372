"""Holding the one-pass schemas to pydantic's: a canary once per process, every tool in tests.

`sfagent.tools._fast_schema` writes, for common shapes, the schema pydantic would generate from
a tool's arguments class, so the class itself can wait for the first call. Its rules mirror the
installed pydantic's; tests/tools/test_fast_schema.py proves them byte for byte over generated
signatures. Two checks keep that true where the tests do not run:

- `fast_path_trusted`: once per process, before the first fast schema is used, a canary
  signature that takes every branch of the rules is made both ways. Another pydantic release
  that renders a shape differently turns the fast path off (every tool is then made the
  pydantic way) rather than letting a schema drift from its validator.
- `VERIFY`: when set (the tools tests set it), every tool made the fast way is also made the
  pydantic way, and defining it fails unless the two schemas are the same bytes.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import json
import logging
import pathlib
import uuid
from collections.abc import Sequence
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel

from sfagent.tools._fast_schema import fast_parameters
from sfagent.tools._json_schema import JSONSchema
from sfagent.tools._pydantic_schema import REQUIRED, ParamDef, arguments_model, model_parameters

VERIFY = False
"""Check every fast schema against the pydantic path when a tool is defined (the tests set it)."""

_log = logging.getLogger("sfagent")


def verify(fast: JSONSchema, tool_name: str, params: tuple[ParamDef, ...], *, strict: bool) -> None:
    """Raise `AssertionError` unless `fast` is the schema the pydantic path makes of `params`."""
    model = arguments_model(tool_name, params, strict=strict, defer=True)
    slow = model_parameters(model, tool_name=tool_name)
    if not same_json(fast, slow):
        raise AssertionError(f"tool '{tool_name}': fast schema {fast} != pydantic's {slow}")


def same_json(a: Any, b: Any) -> bool:
    """Whether two schemas serialise to the same bytes (key order and 1 / 1.0 / true told apart)."""
    return json.dumps(a) == json.dumps(b)


@functools.lru_cache(maxsize=1)
def fast_path_trusted() -> bool:
    """Whether, with the pydantic installed, the canary comes out the same both ways (once)."""
    params = _canary()
    try:  # strict: the one key strict adds (additionalProperties) is compared too
        fast = fast_parameters(params, forbid_extra=True)
        slow = model_parameters(
            arguments_model("canary", params, strict=True, defer=True), tool_name="canary"
        )
    except Exception:  # any failure means: do not trust the fast path
        fast, slow = None, {}
    if same_json(fast, slow):
        return True
    _log.debug("one-pass tool schemas differ from pydantic's; pydantic makes them all: %s", fast)
    return False


def _canary() -> tuple[ParamDef, ...]:
    """Parameters that take every branch of `_fast_schema`'s rules."""
    from pydantic import Field

    class Shade(enum.Enum):
        """Shades."""

        LIGHT = "light"
        DARK = "dark"

    class Rank(enum.IntEnum):
        LOW = 1

    class Spot(BaseModel):
        """A spot."""

        x: Annotated[float, Field(ge=0)]
        shade: Shade = Shade.DARK
        note: str | None = None

    inner = list[Annotated[int, Field(le=5, description="Inner.")]]
    annotations: list[tuple[Any, Any]] = [
        (str, REQUIRED), (Any, REQUIRED), (None, None), (bool | None, False),
        (Annotated[int, Field(ge=0, lt=10, multiple_of=2, description="Ann.")], 4),
        (Annotated[float, Field(gt=0, le=1.5)], 1.5),
        (Annotated[str, Field(min_length=1, max_length=5, pattern="^a")], REQUIRED),
        (Literal["a", "b"], "a"), (Union[Literal[1], Literal[True, "x", None]], None),  # noqa: UP007
        (Shade, Shade.LIGHT), (Annotated[Rank, Field(description="Rank.")], REQUIRED),
        (Spot, REQUIRED), (Spot | None, None),
        (dict[str, inner], {"b": {"z": [{"y": 1, "x": 2}]}, "a": [Shade.DARK]}),
        (tuple[dt.date, dt.datetime, dt.time, uuid.UUID, pathlib.Path], REQUIRED),
        (tuple[float, ...], (1.0,)), (Annotated[set[str], Field(min_length=1)], {"b", "a"}),
        (frozenset[int] | Sequence[int] | list[int] | None, None),
        (Annotated[dict[str, Any], Field(max_length=3)], None), (list | dict, None),
    ]  # fmt: skip
    return tuple(
        ParamDef(f"p{i}", f"p{i}", annotation, default, f"About p{i}." if i > 1 else None)
        for i, (annotation, default) in enumerate(annotations)
    )
