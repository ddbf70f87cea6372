"""Tool definition and call costs: 128 tools defined, first binds, invoke overhead, validations/s.

Run: ``python benchmarks/bench_tools.py [--quick] [--against DIR]``. Prints markdown tables.

- Defining 128 distinct tools (1-6 parameters, varied types, Google/NumPy/reST/Epydoc
  docstrings) and putting them in a `ToolSet`, each scenario in a fresh interpreter:
  *cold* is the first definition in a process, with the import of `sfagent.tools` and pydantic
  counted or not (either way it pays what the first tools load lazily: docstring-parser,
  jsonschema, the meta-schema validator, the fast-schema canary); *after imports, warm* is the
  figure comparable to other frameworks' "define N tools" timings and the one the 60 ms target
  is for: everything imported and one other tool defined first, then the 128 defined for the
  first time in that process; *again* redefines the same 128 functions.
- The first `bind` of each of the 128 tools (where a validator is built when first needed)
  against a second `bind` of each.
- `invoke` of a 3-argument tool with the model's JSON text, against calling the function.
- `ainvoke` of an async 3-argument tool, against awaiting the coroutine function; and of the
  same sync tool (which `ainvoke` runs in a worker thread).
- Validations per second: `bind` alone (parse + validate + arrange the call).
- `import sfagent` and `import sfagent.tools` in a fresh interpreter.

Every figure comes from fresh child interpreters, one per sample. With ``--against DIR`` (a
directory holding another `sfagent` package, e.g. ``git archive HEAD sfagent | tar -x -C DIR``)
each sample is taken for this tree and for DIR in turn, alternating, so a busy machine weighs
on both alike. Times come from `time.perf_counter`; each figure is the best (lowest) of the
samples, the usual way to estimate a cost without the machine's noise; medians beside them.
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
import tempfile
import textwrap
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

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


# A valid JSON value for each required type above, for `bind` (the others have defaults).
_SAMPLES = {
    "str": "x",
    "int": 1,
    "list[str]": ["a"],
    "datetime.date": "2024-01-02",
    "Address": {"street": "1 Main St", "city": "Hangzhou", "postcode": "310000"},
    "tuple[float, float]": [1.0, 2.0],
}


def _tool_specs(count: int) -> list[tuple[str, list[tuple[str, str, str | None]], int]]:
    """(name, [(parameter, annotation, default)], index) for each of the `count` tools."""
    rng = random.Random(1234)
    specs = []
    for i in range(count):
        name = f"{_VERBS[i % len(_VERBS)]}_{_NOUNS[i // len(_VERBS) % len(_NOUNS)]}_{i}"
        arity = 1 + i % 6
        picked = rng.sample(range(len(_TYPES)), arity)
        params = [(f"{_WORDS[k % len(_WORDS)]}_{k}", *_TYPES[k]) for k in picked]
        params.sort(key=lambda p: p[2] is not None)  # required ones first
        specs.append((name, params, i))
    return specs


def tools_source(count: int = TOOL_COUNT) -> str:
    """Module source defining `count` distinct `@tool` functions and a `TOOLS` ToolSet."""
    parts = [_PRELUDE]
    names = []
    for name, params, i in _tool_specs(count):
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


def tools_arguments(count: int = TOOL_COUNT) -> dict[str, str]:
    """Valid `arguments` JSON text for each tool of `tools_source`, by tool name."""
    return {
        name: json.dumps({n: _SAMPLES[a] for n, a, d in params if d is None})
        for name, params, _ in _tool_specs(count)
    }


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

# Each scenario runs in a fresh interpreter; it reads the sources (and arguments) on stdin and
# prints its timings, in seconds, as JSON.
_COLD_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    sources = json.loads(sys.stdin.read())["sources"]
    codes = [compile(source, "<tools>", "exec") for source in sources]
    t0 = time.perf_counter()
    import sfagent.tools, pydantic  # the cold figure includes loading them
    times = {"imports": time.perf_counter() - t0}
    for key, code in zip(["define", "again", "simple", "floor"], [codes[0], *codes]):
        start = time.perf_counter()
        exec(code, {"__name__": "bench_tools_module"})
        times[key] = time.perf_counter() - start
    print(json.dumps(times))
    """
)

_WARM_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    given = json.loads(sys.stdin.read())
    code = compile(given["sources"][0], "<tools>", "exec")
    t0 = time.perf_counter()
    import sfagent.tools, pydantic, jsonschema, docstring_parser  # all a definition loads
    times = {"all_imports": time.perf_counter() - t0}
    start = time.perf_counter()
    exec(compile(given["first"], "<first>", "exec"), {"__name__": "bench_first_tool"})
    times["first_tool"] = time.perf_counter() - start
    namespace = {"__name__": "bench_tools_module"}
    start = time.perf_counter()
    exec(code, namespace)
    times["warm"] = time.perf_counter() - start
    tools, arguments = list(namespace["TOOLS"]), given["arguments"]
    for key in ("first_bind", "second_bind"):
        start = time.perf_counter()
        for one in tools:
            one.bind(arguments[one.name])
        times[key] = time.perf_counter() - start
    print(json.dumps(times))
    """
)

# Defined first in the warm scenario: a tool unlike the 128 (its shapes are not theirs).
FIRST_TOOL = '''
from sfagent import tool

@tool
def first(query: str, page: int = 1) -> str:
    """Search.

    Args:
        query: What to look for.
        page: Which page.
    """
    return query

first.bind('{"query": "q"}')
'''


_EMPTY_DIR = tempfile.mkdtemp(prefix="bench_tools_")  # children run here: no sfagent in cwd


def _child(args: list[str], tree: str | None, stdin: str = "") -> str:
    """Run this interpreter with `args`, importing sfagent from `tree` (else as installed)."""
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = os.pathsep.join([tree, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    done = subprocess.run(
        [sys.executable, *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=_EMPTY_DIR,
    )
    return done.stdout


def where(tree: str | None) -> str:
    """The directory of the `sfagent` package a child imports for `tree`."""
    script = "import os, sfagent; print(os.path.dirname(sfagent.__file__))"
    return _child(["-c", script], tree).strip()


def _import_script(module: str) -> str:
    return f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"


def sample(tree: str | None, number: int, repeat: int) -> dict[str, list[float]]:
    """One sample of every measurement, each scenario in its own fresh interpreter."""
    given = json.dumps(
        {
            "sources": [tools_source(), SIMPLE_SOURCE, FLOOR_SOURCE],
            "arguments": tools_arguments(),
            "first": FIRST_TOOL,
        }
    )
    found: dict[str, list[float]] = {}
    for script in (_COLD_SCRIPT, _WARM_SCRIPT):
        for key, value in json.loads(_child(["-c", script], tree, given)).items():
            found[key] = [value]
    found["cold"] = [found["imports"][0] + found["define"][0]]
    for key, module in (("import_sfagent", "sfagent"), ("import_tools", "sfagent.tools")):
        found[key] = [float(_child(["-c", _import_script(module)], tree))]
    calls = [os.path.abspath(__file__), "--per-call", str(number), str(repeat)]
    found.update(json.loads(_child(calls, tree)))
    return found


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


def measure_calls(number: int, repeat: int) -> dict[str, list[float]]:
    """Per-call timings of `invoke`, `ainvoke` and `bind` (run in a child: `--per-call`)."""
    from sfagent import Tool, tool

    sync_tool: Tool[..., int] = tool(add)
    async_tool = tool(aadd)
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
    found = {
        "direct": per_call(lambda: add(1, 2, 3), number, repeat),
        "invoke_text": per_call(lambda: sync_tool.invoke(ARGUMENTS), number, repeat),
        "invoke_dict": per_call(lambda: sync_tool.invoke(parsed), number, repeat),
        "bind_text": per_call(lambda: sync_tool.bind(ARGUMENTS), number, repeat),
        "bind_hand": per_call(lambda: hand.bind(ARGUMENTS), number // 4, repeat),
        "a_direct": async_per_call(lambda: aadd(1, 2, 3), number, repeat),
        "a_invoke": async_per_call(lambda: async_tool.ainvoke(ARGUMENTS), number, repeat),
        "a_sync": async_per_call(lambda: sync_tool.ainvoke(ARGUMENTS), number // 10, repeat),
    }
    found["overhead"] = [t - min(found["direct"]) for t in found["invoke_text"]]
    found["a_overhead"] = [t - min(found["a_direct"]) for t in found["a_invoke"]]
    return {key: [min(values)] for key, values in found.items()}  # this sample's best


# --------------------------------------------------------------------------------------------
# Report.
# --------------------------------------------------------------------------------------------


def _versions() -> str:
    names = ("pydantic", "pydantic-core", "jsonschema", "docstring-parser")
    return ", ".join(f"{n} {metadata.version(n)}" for n in names)


N = TOOL_COUNT
# (key, label, scale, unit, note); a key ending in "/N" is shown per tool.
ROWS: list[tuple[str, str, float, str, str]] = [
    ("cold", f"define {N} tools + ToolSet, cold (fresh process, incl. imports)", 1e3, "ms", ""),
    ("define", "... cold, after `import sfagent.tools, pydantic`", 1e3, "ms",
     "pays lazy imports and one-time setup"),
    ("warm", f"define {N} tools + ToolSet, after imports (warm)", 1e3, "ms",
     f"target ≤ {TARGET_DEFINE_MS:.0f} ms; one other tool defined first"),
    ("warm/N", "... per tool, after imports (warm)", 1e6, "µs", ""),
    ("imports", "importing sfagent.tools + pydantic", 1e3, "ms", ""),
    ("first_tool", "first tool in a process, all imports done", 1e3, "ms",
     "one-time setup (meta-schema validator, canary)"),
    ("again", f"define the same {N} functions again", 1e3, "ms", ""),
    ("first_bind", f"first `bind` of each of the {N} tools", 1e3, "ms",
     "builds validators not built at definition"),
    ("second_bind", f"second `bind` of each of the {N} tools", 1e3, "ms", ""),
    ("simple", f"define {N} simple tools (3 scalars), after imports", 1e3, "ms", ""),
    ("floor", f"floor: pydantic create_model + model_json_schema × {N}", 1e3, "ms",
     "3 scalar fields, no sfagent"),
    ("import_sfagent", "`import sfagent` (fresh process)", 1e3, "ms", ""),
    ("import_tools", "`import sfagent.tools` (fresh process)", 1e3, "ms", ""),
    ("direct", "call `add(1, 2, 3)` directly", 1e6, "µs", ""),
    ("invoke_text", '`invoke(\'{"a": 1, "b": 2, "c": 3}\')`', 1e6, "µs", ""),
    ("overhead", "... overhead over the direct call", 1e6, "µs",
     f"target ≤ {TARGET_INVOKE_US:.0f} µs"),
    ("invoke_dict", "`invoke({...})` (a parsed dict)", 1e6, "µs", ""),
    ("a_direct", "await `aadd(1, 2, 3)` directly", 1e6, "µs", ""),
    ("a_invoke", "await `ainvoke(...)`, async tool", 1e6, "µs", ""),
    ("a_overhead", "... overhead over the direct await", 1e6, "µs", ""),
    ("a_sync", "await `ainvoke(...)`, sync tool (worker thread)", 1e6, "µs", ""),
    ("bind_text", "validations/s, `bind` (pydantic, JSON text)", -1, "/s", ""),
    ("bind_hand", "validations/s, `bind` (`Tool.from_schema`, jsonschema)", -1, "/s", ""),
]  # fmt: skip


def _cells(values: list[float], scale: float, unit: str) -> str:
    if scale < 0:  # a rate: the best is the highest
        rates = [1 / v for v in values]
        return f"{max(rates):,.0f} {unit} | {statistics.median(rates):,.0f} {unit}"
    best, median = min(values) * scale, statistics.median(values) * scale
    return f"{best:,.1f} {unit} | {median:,.1f} {unit}"


def report(columns: list[tuple[str, dict[str, list[float]]]]) -> None:
    """Print one row per measurement, a best and a median for each tree."""
    heads = "".join(f" {name}: best | {name}: median |" for name, _ in columns)
    print(f"| measurement |{heads} note |")
    print("|---|" + "---:|---:|" * len(columns) + "---|")
    for key, label, scale, unit, note in ROWS:
        cells = []
        for _, found in columns:
            values = [v / N for v in found[key[:-2]]] if key.endswith("/N") else found.get(key, [])
            cells.append(_cells(values, scale, unit) if values else "- | -")
        print(f"| {label} | {' | '.join(cells)} | {note} |")


def main() -> None:
    """Take the samples (alternating trees when comparing) and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples (a smoke run)")
    parser.add_argument("--against", metavar="DIR", help="also measure the sfagent in DIR")
    parser.add_argument("--per-call", nargs=2, type=int, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.per_call:  # a child: one sample of the per-call timings, as JSON
        print(json.dumps(measure_calls(*options.per_call)))
        return
    runs, repeat, number = (3, 2, 2_000) if options.quick else (7, 3, 10_000)
    print(
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"{platform.platform()}, {os.cpu_count()} CPUs; {_versions()}; "
        f"best and median of {runs} fresh-process samples\n"
    )
    trees: list[tuple[str, str | None]] = [("this tree", None)]
    if options.against:
        trees.append((Path(options.against).name or options.against, options.against))
    for name, tree in trees:
        print(f"- {name}: `{where(tree)}`")
    print()
    found: dict[str, dict[str, list[float]]] = {name: {} for name, _ in trees}
    for _ in range(runs):
        for name, tree in trees:  # alternating, so load on the machine weighs on both alike
            for key, values in sample(tree, number, repeat).items():
                found[name].setdefault(key, []).extend(values)
    report([(name, found[name]) for name, _ in trees])


if __name__ == "__main__":
    main()
