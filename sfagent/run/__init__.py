"""One agent run: the pure loop and the two thin drivers that perform what it asks.

- `_loop`: `run_flow`, a generator that decides everything (what to send, when to stop, which
  limit was hit) and yields actions; `_actions` names those actions.
- `_limits`, `_state`, `_requests`, `_tool_calls`, `_output`, `_text_calls`, `_usage`: the
  loop's pure helpers (verdicts on limits, what a run holds, what each request asks for,
  checking the model's tool calls and rendering their outcomes, structured output, calls
  written as text, token counts).
- `_invoke`: running one prepared tool call and classifying its outcome, shared by both drivers;
  `_pool`: the agent's bounded threads for sync tools.
- `_drive_sync`, `_drive_async`: perform the actions with blocking I/O or on an event loop.

Nothing here is public API; `sfagent.agent.Agent` is the face of it.
"""
