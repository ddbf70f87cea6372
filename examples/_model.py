"""The model the examples run on: SiliconFlow when a key is set, an offline stand-in otherwise.

Not an example itself: each example imports `pick_model` so that it runs anywhere, with or
without a ``SILICONFLOW_API_KEY``.
"""

from __future__ import annotations

import os
import sys

from sfagent import Model
from sfagent.testing import DemoModel


def pick_model(default_id: str, offline: Model | None = None) -> str | Model:
    """The model id to use online, or an offline model when no API key is set.

    Args:
        default_id: The SiliconFlow model the example is written for.
        offline: The offline model to use without a key (`DemoModel` when not given); an
            example passes a `ScriptedModel` when a scripted run tells its story better.
    """
    if os.environ.get("SILICONFLOW_API_KEY"):
        return default_id
    kind = "demo model" if offline is None else "scripted model"
    print(f"No SILICONFLOW_API_KEY: running offline on the {kind}.", file=sys.stderr)
    return offline if offline is not None else DemoModel()
