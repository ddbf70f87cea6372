"""Tool definition and call overhead: 128 tools defined, invoke/ainvoke overhead, validations/s.

Run: ``.venv/bin/python benchmarks/bench_tools.py [--quick]``. Prints markdown tables.

- Defining 128 distinct tools (1-6 parameters, varied types, Google/NumPy/reST/Epydoc
  docstrings) and putting them in a `ToolSet`, in a fresh interpreter each run: *cold* counts
  everything the first tools pay (pydantic, docstring-parser and jsonschema loading, the
  meta-schema validator); *after imports* starts once `sfagent.tools` and pydantic are loaded
  (the figure comparable to other frameworks' "define N tools" timings); *warm* redefines the
  same 128 functions again in that process.
- `invoke` of a 3-argument tool with the model's JSON text, against calling the function.
- `ainvoke` of an async 3-argument tool, against awaiting the coroutine function; and of the
  same sync tool (which `ainvoke` runs in a worker thread).
- Validations per second: `bind` alone (parse + validate + arrange the call).
- `import sfagent` and `import sfagent.tools` in a fresh interpreter.

Times come from `time.perf_counter`; each figure is the best (lowest) of several repeats, the
usual way to estimate a cost without the machine's noise; medians are shown beside them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from importlib import metadata

from sfagent import Tool, tool

TOOL_COUNT = 128
TARGET_DEFINE_MS = 60.0
TARGET_INVOKE_US = 30.0

# --------------------------------------------------------------------------------------------
# 128 distinct tools, as module source.
# --------------------------------------------------------------------------------------------

_PRELUDE = """
import datetime
import enum
from typing import Annotated, Literal, Optional

from pydantic import BaseModel, Field

from sfagent import ToolSet, tool


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"
    BLUE = "blue"


class Address(BaseModel):
    street: str
    city: str
    postcode: Annotated[str, Field(pattern=r"^[0-9]{6}$")]
"""

# (annotation, default-or-None) pairs; a default of None means "required".
_TYPES = [
    ("str", None),
    ("int", None),
    ("float", "1.0"),
    ("bool", "False"),
    ('Literal["asc", "desc"]', '"asc"'),
    ("list[str]", None),
    ("Optional[int]", "None"),
    ("datetime.date", None),
    ("datetime.datetime | None", "None"),
    ("Color", "Color.RED"),
    ("Address", None),
    ("Annotated[int, Field(ge=0, le=100, description='A percentage.')]", "50"),
    ("dict[str, int]", "None"),
    ("tuple[float, float]", None),
]
_VERBS = ["get", "list", "find", "create", "update", "delete", "send", "check", "count", "plan"]
_NOUNS = ["weather", "orders", "users", "files", "tickets", "events", "prices", "routes"]
_WORDS = ["city", "limit", "query", "when", "color", "address", "ratio", "tags", "owner", "page"]


def _docstring(style: int, summary: str, names: list[str]) -> str:
    if style == 0:  # Google
        args = "".join(
            f"        {n}: The {n} to use,\n            over two lines.\n" for n in names
        )
        returns = "    Returns:\n        JSON.\n"
        return f"{summary}\n\n    Longer explanation.\n\n    Args:\n{args}\n{returns}"
    if style == 1:  # NumPy
        args = "".join(f"    {n} : object\n        The {n} to use.\n" for n in names)
        returns = "    Returns\n    -------\n    str\n"
        return f"{summary}\n\n    Parameters\n    ----------\n{args}\n{returns}"
    if style == 2:  # reST
        args = "".join(f"    :param {n}: The {n} to use.\n" for n in names)
        return f"{summary}\n\n{args}    :returns: JSON.\n"
    args = "".join(f"    @param {n}: The {n} to use.\n" for n in names)  # Epydoc
    return f"{summary}\n\n{args}    @return: JSON.\n"


def tools_source(count: int = TOOL_COUNT, *, suffix: str = "") -> str:
    """Module source defining `count` distinct `@tool` functions and a `TOOLS` ToolSet."""
    rng = random.Random(1234)
    parts = [_PRELUDE]
    names = []
    for i in range(count):
        name = f"{_VERBS[i % len(_VERBS)]}_{_NOUNS[i // len(_VERBS) % len(_NOUNS)]}_{i}{suffix}"
        arity = 1 + i % 6
        picked = rng.sample(range(len(_TYPES)), arity)
        params = [(f"{_WORDS[k % len(_WORDS)]}_{k}", *_TYPES[k]) for k in picked]
        params.sort(key=lambda p: p[2] is not None)  # required ones first
        signature = ", ".join(f"{n}: {a}" + (f" = {d}" if d else "") for n, a, d in params)
        doc = _docstring(i % 4, f"{name.replace('_', ' ').capitalize()}.", [p[0] for p in params])
        decorator = "@tool(strict=True)" if i % 16 == 15 and "dict[" not in signature else "@tool"
        is_async = "async " if i % 8 == 7 else ""
        parts.append(
            f'\n\n{decorator}\n{is_async}def {name}({signature}):\n    """{doc}    """\n'
            f"    return {params[0][0]}\n"
        )
        names.append(name)
    parts.append(f"\n\nTOOLS = ToolSet([{', '.join(names)}])\n")
    return "".join(parts)


SIMPLE_SOURCE = "from sfagent import tool\n" + "".join(
    f'''
@tool
def simple_{i}(a: str, b: int = 1, c: float = 0.5) -> str:
    """Do thing {i}.

    Args:
        a: The a.
        b: The b.
        c: The c.
    """
    return a
'''
    for i in range(TOOL_COUNT)
)

# The floor under any pydantic-based tool: create a model from 3 fields, generate its schema.
FLOOR_SOURCE = f"""
from pydantic import create_model
for i in range({TOOL_COUNT}):
    create_model(f"m{{i}}", a=(str, ...), b=(int, 1), c=(float, 0.5)).model_json_schema()
"""

_DEFINE_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    sources = json.loads(sys.stdin.read())
    codes = [compile(source, "<tools>", "exec") for source in sources]
    t0 = time.perf_counter()
    import sfagent.tools, pydantic  # the cold figure includes loading them
    times = [time.perf_counter() - t0]
    for code in [codes[0], *codes]:  # the varied set twice (cold, then warm), simple, floor
        start = time.perf_counter()
        exec(code, {"__name__": "bench_tools_module"})
        times.append(time.perf_counter() - start)
    print(*times)
    """
)


def measure_definitions(runs: int) -> dict[str, list[float]]:
    """Seconds to define 128 tools: cold, after imports and warm, one list entry per run."""
    sources = json.dumps([tools_source(), SIMPLE_SOURCE, FLOOR_SOURCE])
    keys = ("imports", "define", "warm", "simple", "floor")
    found: dict[str, list[float]] = {key: [] for key in (*keys, "cold")}
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", _DEFINE_SCRIPT],
            input=sources,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        values = dict(zip(keys, (float(x) for x in out.split()), strict=True))
        for key, value in values.items():
            found[key].append(value)
        found["cold"].append(values["imports"] + values["define"])
    return found


def measure_imports(module: str, runs: int) -> list[float]:
    """Seconds to import `module` in a fresh interpreter."""
    script = (
        f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    )
    return [
        float(
            subprocess.run(
                [sys.executable, "-c", script], capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(runs)
    ]


# --------------------------------------------------------------------------------------------
# Per-call overhead.
# --------------------------------------------------------------------------------------------


def add(a: int, b: int, c: int = 0) -> int:
    """Add three numbers.

    Args:
        a: First.
        b: Second.
        c: Third.
    """
    return a + b + c


async def aadd(a: int, b: int, c: int = 0) -> int:
    """Add three numbers, asynchronously."""
    return a + b + c


ARGUMENTS = '{"a": 1, "b": 2, "c": 3}'


def per_call(fn: Callable[[], object], number: int, repeat: int) -> list[float]:
    """Seconds per call of `fn`, one entry per repeat of `number` calls."""
    results = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        results.append((time.perf_counter() - start) / number)
    return results


def async_per_call(make: Callable[[], object], number: int, repeat: int) -> list[float]:
    """Seconds per await of `make()`, measured inside one running event loop."""

    async def run() -> list[float]:
        results = []
        for _ in range(repeat):
            start = time.perf_counter()
            for _ in range(number):
                await make()  # type: ignore[misc]
            results.append((time.perf_counter() - start) / number)
        return results

    return asyncio.run(run())


# --------------------------------------------------------------------------------------------
# Report.
# --------------------------------------------------------------------------------------------


def _versions() -> str:
    names = ("pydantic", "pydantic-core", "jsonschema", "docstring-parser")
    return ", ".join(f"{n} {metadata.version(n)}" for n in names)


def _row(label: str, values: list[float], scale: float, unit: str, note: str = "") -> str:
    best, median = min(values) * scale, statistics.median(values) * scale
    return f"| {label} | {best:,.1f} {unit} | {median:,.1f} {unit} | {note} |"


def main() -> None:
    """Run every measurement and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run)")
    options = parser.parse_args()
    runs, repeat, number = (3, 3, 2_000) if options.quick else (7, 7, 20_000)

    print(
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"{platform.platform()}, {os.cpu_count()} CPUs; {_versions()}\n"
    )

    defined = measure_definitions(runs)
    imp_sfagent = measure_imports("sfagent", runs)
    imp_tools = measure_imports("sfagent.tools", runs)

    sync_tool: Tool[..., int] = tool(add)
    async_tool: Tool[..., int] = tool(aadd)
    hand = Tool.from_schema(
        lambda **kw: kw["a"] + kw["b"] + kw.get("c", 0),
        name="add_hand",
        description="Add three numbers.",
        parameters={
            "type": "object",
            "properties": {k: {"type": "integer"} for k in "abc"},
            "required": ["a", "b"],
        },
    )
    parsed = json.loads(ARGUMENTS)
    assert sync_tool.invoke(ARGUMENTS) == add(1, 2, 3) == 6

    direct = per_call(lambda: add(1, 2, 3), number, repeat)
    invoke_text = per_call(lambda: sync_tool.invoke(ARGUMENTS), number, repeat)
    invoke_dict = per_call(lambda: sync_tool.invoke(parsed), number, repeat)
    bind_text = per_call(lambda: sync_tool.bind(ARGUMENTS), number, repeat)
    bind_hand = per_call(lambda: hand.bind(ARGUMENTS), number // 4, repeat)

    a_direct = async_per_call(lambda: aadd(1, 2, 3), number, repeat)
    a_invoke = async_per_call(lambda: async_tool.ainvoke(ARGUMENTS), number, repeat)
    a_sync = async_per_call(lambda: sync_tool.ainvoke(ARGUMENTS), number // 10, repeat)

    ms, us = 1e3, 1e6
    print("| measurement | best | median | note |")
    print("|---|---:|---:|---|")
    print(
        _row(
            f"define {TOOL_COUNT} tools + ToolSet, cold (fresh process, incl. imports)",
            defined["cold"],
            ms,
            "ms",
        )
    )
    print(
        _row(
            f"define {TOOL_COUNT} tools + ToolSet, after imports",
            defined["define"],
            ms,
            "ms",
            f"target ≤ {TARGET_DEFINE_MS:.0f} ms",
        )
    )
    print(_row("... of which importing sfagent.tools + pydantic", defined["imports"], ms, "ms"))
    print(
        _row(
            f"define {TOOL_COUNT} simple tools (3 scalars), after imports",
            defined["simple"],
            ms,
            "ms",
        )
    )
    print(
        _row(
            f"floor: pydantic create_model + model_json_schema × {TOOL_COUNT}",
            defined["floor"],
            ms,
            "ms",
            "3 scalar fields, no sfagent",
        )
    )
    warm_per_tool = [t / TOOL_COUNT for t in defined["warm"]]
    print(_row(f"define {TOOL_COUNT} tools again, warm", defined["warm"], ms, "ms"))
    print(_row("... per tool, warm", warm_per_tool, us, "µs"))
    print(_row("`import sfagent` (fresh process)", imp_sfagent, ms, "ms"))
    print(_row("`import sfagent.tools` (fresh process)", imp_tools, ms, "ms"))
    print(_row("call `add(1, 2, 3)` directly", direct, us, "µs"))
    overhead = [i - min(direct) for i in invoke_text]
    print(_row('`invoke(\'{"a": 1, "b": 2, "c": 3}\')`', invoke_text, us, "µs"))
    print(
        _row(
            "... overhead over the direct call",
            overhead,
            us,
            "µs",
            f"target ≤ {TARGET_INVOKE_US:.0f} µs",
        )
    )
    print(_row("`invoke({...})` (a parsed dict)", invoke_dict, us, "µs"))
    print(_row("await `aadd(1, 2, 3)` directly", a_direct, us, "µs"))
    print(_row("await `ainvoke(...)`, async tool", a_invoke, us, "µs"))
    print(
        _row("... overhead over the direct await", [i - min(a_direct) for i in a_invoke], us, "µs")
    )
    print(_row("await `ainvoke(...)`, sync tool (worker thread)", a_sync, us, "µs"))
    per_second = [1 / t for t in bind_text]
    print(
        f"| validations/s, `bind` (pydantic, JSON text) | {max(per_second):,.0f} /s "
        f"| {statistics.median(per_second):,.0f} /s | |"
    )
    per_second = [1 / t for t in bind_hand]
    print(
        f"| validations/s, `bind` (`Tool.from_schema`, jsonschema) | {max(per_second):,.0f} /s"
        f" | {statistics.median(per_second):,.0f} /s | |"
    )


if __name__ == "__main__":
    main()
