"""A planner that delegates: a researcher agent reads local notes, a calculator agent does sums.

Each helper is an ordinary `Agent` made into a tool with `as_tool`. The planner calls them like
any tool; each call is a whole run of the helper, bounded by the planner's time and token
budgets, its usage added to the planner's, and its transcript kept on the call's record.

Run it:
    python examples/planner.py
    python examples/planner.py "Which notes mention tea, and what is 12 * 7?"
"""

from __future__ import annotations

import ast
import operator
import re
import sys
from pathlib import Path
from typing import Any

from sfagent import Agent, ChatRequest, RunResult, tool
from sfagent.testing import DemoModel, Reply, ScriptedModel, ScriptedToolCall

DATA_DIR = Path(__file__).parent / "data"


@tool
def list_notes() -> list[str]:
    """List the notes the researcher can read (file names)."""
    return sorted(path.name for path in DATA_DIR.glob("*.txt"))


@tool
def read_note(name: str) -> str:
    """Read one note.

    Args:
        name: The note's file name, as `list_notes` gives it.
    """
    path = (DATA_DIR / name).resolve()
    if not path.is_relative_to(DATA_DIR.resolve()) or path.suffix != ".txt":
        raise ValueError(f"{name!r} is not one of the notes; call list_notes")
    return path.read_text(encoding="utf-8")


_ARITHMETIC = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.USub: operator.neg,
}


@tool
def calculate(expression: str) -> float:
    """Evaluate + - * / arithmetic with parentheses.

    Args:
        expression: The expression, e.g. "4 * 90 / 60".
    """

    def value(node: ast.AST) -> float:  # a walk over the parse tree: never eval() model text
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
            return _ARITHMETIC[type(node.op)](value(node.left), value(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _ARITHMETIC:
            return _ARITHMETIC[type(node.op)](value(node.operand))
        raise ValueError(f"unsupported syntax: {ast.unparse(node)!r}")

    return value(ast.parse(expression, mode="eval").body)


def build(planner_model: Any, researcher_model: Any, calculator_model: Any) -> Agent:
    """The planner, with the researcher and the calculator as its tools."""
    researcher = Agent(
        researcher_model,
        tools=[list_notes, read_note],
        instructions="Answer from the notes only. Read them with the tools; quote what you use.",
    )
    calculator = Agent(
        calculator_model,
        tools=[calculate],
        instructions="Work out the arithmetic you are given with the calculate tool.",
    )
    return Agent(
        planner_model,
        tools=[
            researcher.as_tool(
                name="research",
                description="Finds facts in the user's local notes. Ask one clear question.",
            ),
            calculator.as_tool(
                name="compute",
                description="Does arithmetic. Give it the expression to work out.",
            ),
        ],
        instructions=(
            "Plan the answer: get facts from research, numbers from compute, then answer "
            "in two sentences."
        ),
        time_limit=120,  # for the planner and everything it delegates
        max_total_tokens=60_000,
    )


# --- offline: what the three models would do, scripted from what the tools really return ---


def _tool_results(request: ChatRequest) -> list[str]:
    return [m["content"] for m in request.to_body()["messages"] if m["role"] == "tool"]


def _sights(request: ChatRequest) -> str:
    note = _tool_results(request)[-1]
    paragraphs = [p for p in note.split("\n\n")[1:] if p.strip()]
    # Each paragraph is a stop; its first clause says what to do there.
    stops = [re.split(r"[;.]", " ".join(p.split()), maxsplit=1)[0] for p in paragraphs]
    return f"The Hangzhou notes suggest {len(stops)} stops: {'; '.join(stops)}."


def _compute_call(request: ChatRequest) -> Reply:
    count = re.search(r"suggest (\d+) stops", _tool_results(request)[-1])
    expression = f"{count[1] if count else 0} * 90 / 60"
    return Reply(tool_calls=[ScriptedToolCall("compute", {"input": expression})])


def _answer(request: ChatRequest) -> str:
    sights, hours = _tool_results(request)
    return f"{sights} At 90 minutes a stop that is {hours} hours."


def offline_models() -> tuple[ScriptedModel, ScriptedModel, ScriptedModel]:
    """Scripted planner, researcher and calculator: the example runs without a key."""
    planner = ScriptedModel(
        [
            Reply(
                tool_calls=[ScriptedToolCall("research", {"input": "Which sights in Hangzhou?"})]
            ),
            _compute_call,
            _answer,
        ]
    )
    researcher = ScriptedModel(
        [
            Reply(tool_calls=[ScriptedToolCall("list_notes", {})]),
            Reply(tool_calls=[ScriptedToolCall("read_note", {"name": "hangzhou.txt"})]),
            _sights,
        ]
    )

    def calculator_answer(request: ChatRequest) -> str:
        return _tool_results(request)[-1]

    def calculator_call(request: ChatRequest) -> Reply:  # the planner's input, as it is
        expression = request.to_body()["messages"][-1]["content"]
        return Reply(tool_calls=[ScriptedToolCall("calculate", {"expression": expression})])

    calculator = ScriptedModel([calculator_call, calculator_answer])
    return planner, researcher, calculator


def show(result: RunResult[Any], indent: str = "") -> None:
    """Every tool call of a run, with the calls of the runs it delegated to beneath it."""
    for turn in result.turns:
        for call in turn.tool_calls:
            content = " ".join(call.content.split())  # one line each
            print(f"{indent}→ {call.name}({call.arguments}) = {content[:70]}")
            if call.sub_run is not None:
                show(call.sub_run, indent + "    ")


QUESTION = "Which sights do my Hangzhou notes suggest, and how many hours at 90 minutes each?"

if __name__ == "__main__":
    from _model import pick_model

    question = sys.argv[1] if len(sys.argv) > 1 else QUESTION
    # Offline, the scripts answer the built-in question; the demo model tries any other.
    offline = offline_models() if question == QUESTION else None
    chosen = pick_model("deepseek-ai/DeepSeek-V3", offline=offline[0] if offline else None)
    if isinstance(chosen, str):  # online: a strong planner, small helpers
        agent = build(chosen, "Qwen/Qwen3-8B", "Qwen/Qwen3-8B")
    elif offline is not None:
        agent = build(*offline)
    else:
        agent = build(chosen, DemoModel(), DemoModel())
    with agent:
        result = agent.run_sync(question)
    show(result)
    print(result.output)
    usage = result.usage
    print(f"({usage.requests} requests and {usage.total_tokens} tokens, helpers included)")
