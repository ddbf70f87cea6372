"""Structured output: the final answer is validated into a pydantic model, not free text.

With `output_type=TripPlan` the agent asks for JSON matching TripPlan's schema and validates
the answer with the same model; an answer that does not fit is sent back to be fixed.

Run it:
    python examples/structured_output.py
    python examples/structured_output.py "Plan one day in Xi'an."

Offline (no SILICONFLOW_API_KEY), a scripted model answers with a plan for Hangzhou, whatever
you ask.
"""

from __future__ import annotations

import sys

from pydantic import BaseModel, Field

from sfagent import Agent, ModelSettings, tool
from sfagent.testing import Reply, ScriptedModel, ScriptedToolCall


class DayPlan(BaseModel):
    day: int = Field(ge=1)
    morning: str
    afternoon: str
    evening: str


class TripPlan(BaseModel):
    city: str
    days: list[DayPlan] = Field(min_length=1)
    budget_cny: int = Field(description="Estimated cost per person, in yuan")
    tips: list[str] = []


@tool
def find_sights(city: str) -> list[str]:
    """List the sights worth visiting in a city."""
    sights = {"hangzhou": ["West Lake", "Lingyin Temple", "Longjing tea fields", "Hefang Street"]}
    return sights.get(city.lower(), [f"{city} old town", f"{city} museum", f"{city} night market"])


OFFLINE_PLAN = TripPlan(
    city="Hangzhou",
    days=[
        DayPlan(
            day=1,
            morning="Sunrise bike ride around West Lake",
            afternoon="Lingyin Temple and the Feilai Feng carvings",
            evening="Snacks on Hefang Street",
        ),
        DayPlan(
            day=2,
            morning="Longjing tea fields at Meijiawu",
            afternoon="Tea tasting and a hill walk",
            evening="Impression West Lake show",
        ),
    ],
    budget_cny=1500,
    tips=["Reach West Lake before 7 am to beat the crowds."],
)

if __name__ == "__main__":
    from _model import pick_model

    # Offline: look up the sights, then answer with the plan as JSON text, as a model would.
    offline = ScriptedModel(
        [
            Reply(tool_calls=[ScriptedToolCall("find_sights", {"city": "Hangzhou"})]),
            OFFLINE_PLAN.model_dump_json(),
        ]
    )
    agent = Agent(
        pick_model("deepseek-ai/DeepSeek-V3", offline=offline),
        tools=[find_sights],
        output_type=TripPlan,
        instructions="You plan short trips. Look up the sights before planning.",
        settings=ModelSettings(max_tokens=2048),  # the default 512 can cut a long plan short
    )
    with agent:
        result = agent.run_sync(sys.argv[1] if len(sys.argv) > 1 else "Plan 2 days in Hangzhou.")
    plan: TripPlan = result.output  # a validated TripPlan, not a string
    print(f"{plan.city}: {len(plan.days)} days, about {plan.budget_cny} yuan")
    for day in plan.days:
        print(f"  Day {day.day}: {day.morning} / {day.afternoon} / {day.evening}")
    print(plan.model_dump_json(indent=2))
