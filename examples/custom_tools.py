"""Plugging in your own tools: a safe calculator, a unit converter and a local file search.

Type hints and docstrings become each tool's schema; the model's arguments are checked against
it before your function runs. A tool that raises sends the error text back to the model.

Run it:
    python examples/custom_tools.py
    sfagent run examples/custom_tools.py "How many feet is 8848 m?"
"""

from __future__ import annotations

import ast
import json
import operator
import sys
from pathlib import Path
from typing import Literal

from sfagent import Agent, ChatRequest, tool
from sfagent.testing import Reply, ScriptedModel, ScriptedToolCall

DATA_DIR = Path(__file__).parent / "data"

_OPERATORS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}


@tool
def calculate(expression: str) -> float:
    """Evaluate an arithmetic expression with + - * / // % ** and parentheses.

    Args:
        expression: The expression, e.g. "(17 + 25) * 3".
    """

    # Walk the parsed expression ourselves: never eval() text a model wrote.
    def evaluate(node: ast.AST) -> float:
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            left, right = evaluate(node.left), evaluate(node.right)
            if isinstance(node.op, ast.Pow) and abs(right) > 100:
                raise ValueError("exponent too large")
            return _OPERATORS[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](evaluate(node.operand))
        raise ValueError(f"unsupported syntax: {ast.unparse(node)!r}")

    return evaluate(ast.parse(expression, mode="eval").body)


Unit = Literal["m", "km", "mi", "ft", "g", "kg", "lb"]
_UNITS = {
    "m": ("length", 1.0),
    "km": ("length", 1000.0),
    "mi": ("length", 1609.344),
    "ft": ("length", 0.3048),
    "g": ("mass", 0.001),
    "kg": ("mass", 1.0),
    "lb": ("mass", 0.45359237),
}


@tool
def convert_units(value: float, from_unit: Unit, to_unit: Unit) -> float:
    """Convert a length or a mass from one unit to another."""
    (kind, factor), (to_kind, to_factor) = _UNITS[from_unit], _UNITS[to_unit]
    if kind != to_kind:
        raise ValueError(f"cannot convert {kind} ({from_unit}) to {to_kind} ({to_unit})")
    return round(value * factor / to_factor, 4)


@tool
def search_files(query: str, pattern: str = "*.txt") -> list[dict[str, str | int]]:
    """Search the local notes for lines containing some text (case-insensitive).

    Args:
        query: The text to look for.
        pattern: Which files to search, as a glob relative to the notes folder.
    """
    hits: list[dict[str, str | int]] = []
    for path in sorted(DATA_DIR.glob(pattern)):
        if not path.resolve().is_relative_to(DATA_DIR.resolve()) or not path.is_file():
            continue  # the glob must not escape the notes folder
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if query.lower() in line.lower():
                hits.append({"file": path.name, "line": number, "text": line.strip()})
    return hits[:20]


def offline_model() -> ScriptedModel:
    """What a model would do here, scripted: the example runs (and is tested) without a key."""

    def answer(request: ChatRequest) -> str:  # the final answer, from the real tool results
        results = [m["content"] for m in request.to_body()["messages"] if m["role"] == "tool"]
        files = sorted({hit["file"] for hit in json.loads(results[2])})
        return (
            f"(17 + 25) * 3 = {results[0]}. 42 km is {results[1]} miles. "
            f"Your notes that mention tea: {', '.join(files)}."
        )

    calls = [
        ScriptedToolCall("calculate", {"expression": "(17 + 25) * 3"}),
        ScriptedToolCall("convert_units", {"value": 42, "from_unit": "km", "to_unit": "mi"}),
        ScriptedToolCall("search_files", {"query": "tea"}),
    ]
    return ScriptedModel([Reply(tool_calls=calls), answer])


QUESTION = "What is (17 + 25) * 3, how many miles is 42 km, and which notes mention tea?"

if __name__ == "__main__":
    from _model import pick_model

    question = sys.argv[1] if len(sys.argv) > 1 else QUESTION
    # Offline, the script answers the built-in question; the demo model tries any other.
    offline = offline_model() if question == QUESTION else None
    agent = Agent(
        pick_model("deepseek-ai/DeepSeek-V3", offline=offline),
        tools=[calculate, convert_units, search_files],
        instructions="Use the tools for every number and every fact about the notes.",
    )
    with agent:
        result = agent.run_sync(question)
    for turn in result.turns:
        for call in turn.tool_calls:
            print(f"→ {call.name}({call.arguments}) = {call.content[:100]}")
    print(result.output)
