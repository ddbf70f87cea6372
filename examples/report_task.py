"""A multi-step task: the model plans, inspects local files with several tools, writes a report.

Run it:
    python examples/report_task.py               # the report goes to a temporary folder
    python examples/report_task.py report.md     # or to the path you give
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from sfagent import Agent, ChatRequest, ModelSettings, tool
from sfagent.testing import Reply, ScriptedModel, ScriptedToolCall

DATA_DIR = Path(__file__).parent / "data"


@tool
def list_files(pattern: str = "*.txt") -> list[str]:
    """List the note files in the data folder matching a glob pattern."""
    return sorted(p.name for p in DATA_DIR.glob(pattern) if p.is_file())


@tool
def file_stats(name: str) -> dict[str, str | int]:
    """Count the lines and words of a note file; also give its first line (its title).

    Args:
        name: A file name, as list_files returns it.
    """
    text = (DATA_DIR / Path(name).name).read_text(encoding="utf-8")  # .name: stay in DATA_DIR
    lines = text.splitlines()
    title = lines[0] if lines else ""
    return {"file": name, "lines": len(lines), "words": len(text.split()), "title": title}


@tool
def read_file(name: str) -> str:
    """Read a note file from the data folder.

    Args:
        name: A file name, as list_files returns it.
    """
    return (DATA_DIR / Path(name).name).read_text(encoding="utf-8")


@tool
def write_report(path: str, markdown: str) -> str:
    """Write the finished report to a file.

    Args:
        path: Where to write it; must end in .md.
        markdown: The whole report, in Markdown.
    """
    target = Path(path)
    if target.suffix != ".md":
        raise ValueError("the report must be written to a .md file")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(markdown, encoding="utf-8")
    return f"wrote {len(markdown)} characters to {target}"


def offline_model(report: Path) -> ScriptedModel:
    """The steps a model takes here, scripted, so the example runs (and is tested) offline.

    Each step after the first is a function of the request: it reads the tool results so far.
    """

    def results(request: ChatRequest) -> list[str]:
        return [m["content"] for m in request.to_body()["messages"] if m["role"] == "tool"]

    def stats_of_each(request: ChatRequest) -> Reply:
        names = json.loads(results(request)[-1])
        return Reply(tool_calls=[ScriptedToolCall("file_stats", {"name": n}) for n in names])

    def read_longest(request: ChatRequest) -> Reply:
        longest = max((json.loads(r) for r in results(request)[1:]), key=lambda s: s["words"])
        return Reply(tool_calls=[ScriptedToolCall("read_file", {"name": longest["file"]})])

    def write(request: ChatRequest) -> Reply:
        *stats, text = results(request)[1:]  # the file_stats results, then the file read
        rows = [json.loads(s) for s in stats]
        table = "\n".join(f"| {s['file']} | {s['lines']} | {s['words']} |" for s in rows)
        longest = max(rows, key=lambda s: s["words"])
        first = next(p for p in text.split("\n\n")[1:] if p.strip()).replace("\n", " ")
        markdown = (
            f"# Notes report\n\n| file | lines | words |\n|---|---:|---:|\n{table}\n\n"
            f"The longest note is **{longest['file']}** ({longest['title']}). "
            f"It opens: {first}\n"
        )
        call = ScriptedToolCall("write_report", {"path": str(report), "markdown": markdown})
        return Reply(tool_calls=[call])

    plan = "Plan: list the notes, count each one's words, read the longest, write the report."
    return ScriptedModel(
        [
            Reply(text=plan, tool_calls=[ScriptedToolCall("list_files")]),
            stats_of_each,
            read_longest,
            write,
            f"Done: the report is in {report}.",
        ]
    )


if __name__ == "__main__":
    from _model import pick_model

    report = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()) / "report.md"
    agent = Agent(
        pick_model("deepseek-ai/DeepSeek-V3", offline=offline_model(report)),
        tools=[list_files, file_stats, read_file, write_report],
        instructions="First state your plan in one line, then carry it out with the tools.",
        settings=ModelSettings(max_tokens=2048),  # room for the whole report in one call
        max_turns=10,
    )
    task = (
        f"Write a short Markdown report on my notes: a table of each file's lines and "
        f"words, then which note is longest and how it opens. Save it to {report}."
    )
    with agent:
        result = agent.run_sync(task)
    for turn in result.turns:  # what the model said and did at each step
        if turn.response.choices[0].message.content:
            print(turn.response.choices[0].message.content)
        for call in turn.tool_calls:
            arguments, content = (" ".join(t.split())[:50] for t in (call.arguments, call.content))
            print(f"  → {call.name}({arguments}) = {content}")
    if not report.exists():
        sys.exit(f"The model did not write {report}. It said: {result.output}")
    print(f"\n--- {report} ---\n{report.read_text(encoding='utf-8')}")
