"""A durable run that waits for a person: a refund needs approval, the run parks, and an
approval sent later from another process (the `sfagent approve` command) lets it go on.

The agent runs as a DBOS workflow (`DurableAgent`, the ``sfagent[dbos]`` extra) with
``approve=wait_for_approval``: when the model asks for a refund the run records what it waits on
and parks. Nothing needs to stay up meanwhile: the process may exit, and the run goes on
wherever DBOS starts it again, with the answer.

Run it:
    python examples/durable_approval.py             # parks, approves from another process, ends
    python examples/durable_approval.py park runs.sqlite     # parks, and this process exits
    sfagent pending refund-A-1042 --database-url sqlite:///runs.sqlite
    sfagent approve refund-A-1042 --database-url sqlite:///runs.sqlite --by alice
    python examples/durable_approval.py resume runs.sqlite   # takes the run up, finishes it
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
from pathlib import Path

from sfagent import Agent, tool
from sfagent.durable import DurableAgent, launch, pending_approval, shutdown, wait_for_approval

RUN_ID = "refund-A-1042"
PROMPT = 'Refund 120 yuan on order "A-1042": the parcel arrived broken.'


@tool(requires_approval=True)
def refund(order_id: str, amount_cny: float) -> str:
    """Refund part or all of an order to the customer's original payment method.

    Args:
        order_id: The order, e.g. "A-1042".
        amount_cny: How much to refund, in yuan.
    """
    # A real refund would go to the payment provider with RunContext.idempotency_key, so a
    # run that crashes after the provider answered cannot pay twice.
    return f"refunded {amount_cny:g} yuan on order {order_id}"


def make_agent() -> DurableAgent[None, str]:
    """The agent, registered under a stable name: whichever process resumes the run finds it
    by that name, so every process that may run it makes the same one."""
    from _model import pick_model  # examples/ is on sys.path when run as a script

    agent: Agent[None, str] = Agent(
        pick_model("Qwen/Qwen3-8B"),
        tools=[refund],
        instructions="You handle customer refunds. Use the refund tool; never promise one.",
        approve=wait_for_approval,  # park the run until someone answers
    )
    return DurableAgent(agent, name="refunds")


async def park(durable: DurableAgent[None, str], database: Path) -> None:
    """Start the run and return once it waits for the approval (the run stays pending)."""
    launch(f"sqlite:///{database}", executor_id="example")
    try:
        await durable.start(PROMPT, run_id=RUN_ID)
        waiting = await asyncio.to_thread(
            pending_approval, RUN_ID, database_url=f"sqlite:///{database}", wait=30
        )
        assert waiting is not None, "the run did not reach the approval"
        print(f"{RUN_ID} waits for approval: {waiting.tool}({waiting.arguments})")
    finally:
        shutdown()
        await durable.agent.aclose()


async def resume(durable: DurableAgent[None, str], database: Path) -> None:
    """Launch DBOS again: it takes up this executor's pending runs; print how the run ended."""
    launch(f"sqlite:///{database}", executor_id="example")
    try:
        result = await durable.run(run_id=RUN_ID)  # the recorded run, not a new one
        print(f"{RUN_ID}: {result.output}")
        print(f"({result.usage.requests} requests)")
    finally:
        shutdown()
        await durable.agent.aclose()


def approve_from_another_process(database: Path) -> None:
    """What an operator would type, run here as a separate process."""
    command = [sys.executable, "-m", "sfagent", "approve", RUN_ID, "--by", "alice",
               "--database-url", f"sqlite:///{database}"]  # fmt: skip
    answered = subprocess.run(command, capture_output=True, text=True, check=True)
    print(f"sfagent approve: {answered.stdout.strip()}")


def main() -> None:
    durable = make_agent()
    if len(sys.argv) == 3 and sys.argv[1] in ("park", "resume"):
        step = park if sys.argv[1] == "park" else resume
        asyncio.run(step(durable, Path(sys.argv[2]).resolve()))
        return
    with tempfile.TemporaryDirectory() as folder:
        database = Path(folder) / "runs.sqlite"
        asyncio.run(park(durable, database))  # this process is done with the run...
        approve_from_another_process(database)  # ...someone approves it later...
        asyncio.run(resume(durable, database))  # ...and a new start finishes it


if __name__ == "__main__":
    main()
