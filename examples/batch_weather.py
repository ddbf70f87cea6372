"""A batch: the twenty rows of a tasks file through one agent, under rate limits, resumable.

`BatchRunner` fills a prompt template from each row of ``data/weather_tasks.jsonl``, runs at most
8 tasks at a time under 1,000 requests and 50,000 tokens a minute, and records every step in a
journal. Run it again with the same journal and the finished tasks come back from it: a batch
that crashed halfway resumes without paying twice.

Run it:
    python examples/batch_weather.py                  # a journal in a temporary folder
    python examples/batch_weather.py weather.journal  # run it twice: the second run resumes
    sfagent batch examples/data/weather_tasks.jsonl --agent examples/batch_weather.py \\
        --template "What's the weather in {city}, in {unit}?" --out results.jsonl
"""

from __future__ import annotations

import sys
import tempfile
import zlib
from pathlib import Path
from typing import Literal

from sfagent import Agent, tool
from sfagent.batch import BatchRunner, RateLimits, load_tasks

TASKS = Path(__file__).resolve().parent / "data" / "weather_tasks.jsonl"
TEMPLATE = "What's the weather in {city}, in {unit}?"


@tool
def get_weather(
    city: str, unit: Literal["celsius", "fahrenheit"] = "celsius"
) -> dict[str, str | int]:
    """Get the current weather in a city.

    Args:
        city: The city's name in English, e.g. "Hangzhou".
        unit: The temperature unit.
    """
    # Fake but deterministic data: the same city always gets the same weather.
    seed = zlib.crc32(city.strip().lower().encode())
    celsius = 5 + seed % 26
    conditions = ["sunny", "cloudy", "light rain", "windy", "overcast"][seed % 5]
    temperature = celsius if unit == "celsius" else round(celsius * 9 / 5 + 32)
    return {"city": city, "temperature": temperature, "unit": unit, "conditions": conditions}


def one_line(text: str, width: int = 110) -> str:
    """The text on one line, cut to `width` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def main(journal: Path) -> None:
    from _model import pick_model  # examples/ is on sys.path when run as a script

    agent = Agent(
        pick_model("Qwen/Qwen3-8B"),
        tools=[get_weather],
        instructions="You are a concise weather assistant. Use the tools; never guess.",
    )
    runner = BatchRunner(
        agent,
        limits=RateLimits(rpm=1000, tpm=50_000),  # your account's limits for this model
        concurrency=8,
        journal=journal,
    )
    tasks = load_tasks(TASKS, template=TEMPLATE)
    with agent:  # closes the HTTP client when done
        for record in runner.run_sync(tasks, resume=True):
            answer = record["output"] if record["status"] == "done" else record["error_message"]
            print(f"{record['id']} [{record['status']}] {one_line(str(answer))}")
    summary = runner.summary
    assert summary is not None
    cost = "no price" if summary.cost is None else f"{summary.cost} {summary.currency}"
    print(
        f"{summary.done} done, {summary.failed} failed, {summary.resumed} from the journal; "
        f"{summary.tokens} tokens, {cost}"
    )


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as folder:
            main(Path(folder) / "weather.journal")
