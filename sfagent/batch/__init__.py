"""Running a workload: many tasks through one agent under the account's rate limits.

The runner (`sfagent batch`) is being built from these parts, each usable on its own:

- Rate limits (`RateLimiter`, `RateLimits`, `shared_limiter`): requests and tokens per minute
  (and per day) on a sliding window, shared by every run against one endpoint and model,
  slowed by 429 replies and recovering gradually; `estimate_tokens` sizes a request body.
- Prices (`PriceTable`, `Price`, `SILICONFLOW_PRICES`, `Budget`): what a request cost, in
  exact decimals, from SiliconFlow's published prices or your own; a money budget.
- Tasks (`load_tasks`, `Task`, `PromptTemplate`): prompts, dicts, JSONL or CSV files, with
  ``{field}`` templates and ids that stay the same from one run of a file to the next.
"""

from sfagent.batch._limiter import (
    DEFAULT_MARGIN,
    EstimateTooLargeError,
    LimiterStats,
    RateLimiter,
    RateLimits,
    Reservation,
    Slot,
    estimate_tokens,
    forget_shared_limiters,
    shared_limiter,
)
from sfagent.batch._tasks import (
    DuplicateTaskIdError,
    PromptTemplate,
    Task,
    TaskError,
    TaskFileError,
    TaskSource,
    TemplateError,
    TemplateFieldError,
    load_tasks,
)
from sfagent.batch.pricing import (
    SILICONFLOW_PRICES,
    Budget,
    Price,
    PriceTable,
    PriceTableError,
    UnknownModelError,
)

__all__ = [
    "DEFAULT_MARGIN",
    "SILICONFLOW_PRICES",
    "Budget",
    "DuplicateTaskIdError",
    "EstimateTooLargeError",
    "LimiterStats",
    "Price",
    "PriceTable",
    "PriceTableError",
    "PromptTemplate",
    "RateLimiter",
    "RateLimits",
    "Reservation",
    "Slot",
    "Task",
    "TaskError",
    "TaskFileError",
    "TaskSource",
    "TemplateError",
    "TemplateFieldError",
    "UnknownModelError",
    "estimate_tokens",
    "forget_shared_limiters",
    "load_tasks",
    "shared_limiter",
]
