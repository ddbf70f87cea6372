"""Running a workload: many tasks through one agent under the account's rate limits.

The runner (`sfagent batch`) is being built from these parts, each usable on its own:

- Rate limits (`RateLimiter`, `RateLimits`, `shared_limiter`): requests and tokens per minute
  (and per day) on a sliding window, shared by every run against one endpoint and model,
  slowed by 429 replies and recovering gradually; `estimate_tokens` sizes a request body.
- Prices (`PriceTable`, `Price`, `SILICONFLOW_PRICES`, `Budget`): what a request cost, in
  exact decimals, from SiliconFlow's published prices or your own; a money budget.
- Tasks (`load_tasks`, `Task`, `PromptTemplate`): prompts, dicts, JSONL or CSV files, with
  ``{field}`` templates and ids that stay the same from one run of a file to the next.
- The runner (`BatchRunner`, `BatchSummary`): the tasks through one agent, every step
  journaled (`SQLiteJournal`) so a resumed batch pays for nothing twice.
- The report (`write_report`, `render_report`): one self-contained HTML page.
- The half-price path (`BatchAPIRunner`): single-turn tasks as SiliconFlow batches.
"""

from sfagent.batch._journal import ConfigMismatchError, Journal, JournalError, SQLiteJournal
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
from sfagent.batch._via_batch_api import BatchAPIRunner, NotBatchableError
from sfagent.batch.pricing import (
    SILICONFLOW_PRICES,
    Budget,
    Price,
    PriceTable,
    PriceTableError,
    UnknownModelError,
)
from sfagent.batch.report import render_report, write_report
from sfagent.batch.runner import BatchRunner, BatchSummary

__all__ = [
    "DEFAULT_MARGIN",
    "SILICONFLOW_PRICES",
    "BatchAPIRunner",
    "BatchRunner",
    "BatchSummary",
    "Budget",
    "ConfigMismatchError",
    "DuplicateTaskIdError",
    "EstimateTooLargeError",
    "Journal",
    "JournalError",
    "LimiterStats",
    "NotBatchableError",
    "Price",
    "PriceTable",
    "PriceTableError",
    "PromptTemplate",
    "RateLimiter",
    "RateLimits",
    "Reservation",
    "SQLiteJournal",
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
    "render_report",
    "shared_limiter",
    "write_report",
]
