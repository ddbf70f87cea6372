"""Asking a vision model about a local image.

`image_part(path)` reads the file and sends it inline as a base64 data URL, which every
SiliconFlow vision model accepts; the prompt is a list of content parts, text and image.

Run it:
    python examples/vision.py
    python examples/vision.py path/to/photo.jpg "What is in this photo?"

Offline (no SILICONFLOW_API_KEY), a scripted model describes the sample chart.
"""

from __future__ import annotations

import sys
from pathlib import Path

from sfagent import Agent, TextPart, image_part
from sfagent.testing import ScriptedModel

SAMPLE = Path(__file__).parent / "data" / "bar_chart.png"
QUESTION = "This is a bar chart. How many bars are there, and which colour is the tallest one?"

if __name__ == "__main__":
    from _model import pick_model

    image = Path(sys.argv[1]) if len(sys.argv) > 1 else SAMPLE
    question = sys.argv[2] if len(sys.argv) > 2 else QUESTION
    # Offline, the script can only describe the sample chart; other images get the demo model.
    answer = "There are three bars: red, green and blue. The green one is the tallest."
    offline = ScriptedModel([answer]) if len(sys.argv) == 1 else None
    agent = Agent(pick_model("Qwen/Qwen2.5-VL-72B-Instruct", offline=offline))
    # A user message made of parts: the question, then the image ("low" detail: fewer tokens).
    prompt = [TextPart(text=question), image_part(image, detail="low")]
    with agent:
        result = agent.run_sync(prompt)
    print(f"{image.name}: {result.output}")
    print(f"({result.usage.total_tokens} tokens)")
