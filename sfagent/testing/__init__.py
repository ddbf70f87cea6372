"""Tools for testing code that uses sfagent, without the network.

- `ScriptedModel` answers an agent with a fixed list of `Reply` objects and records requests.
- `DemoModel` and `OfflineModel` (from `sfagent.offline`, re-exported here): the demo model
  calls the tools it is given with plausible arguments, then sums up the results.
- `LoopbackServer` is a real HTTP server on 127.0.0.1 that speaks SiliconFlow's API, answering
  with scripted `Reply` objects and injecting faults on request.
- `BatchServer` is a `LoopbackServer` that also emulates SiliconFlow's batch API (files and
  batches), from its published format.
- `allow_model_requests(False)` / `block_model_requests()` make real model requests fail.
"""

from __future__ import annotations

from sfagent.offline.demo import DemoModel
from sfagent.offline.model import OfflineModel
from sfagent.offline.replies import Fault, RecordedRequest, Reply, ScriptedToolCall
from sfagent.testing.batch_server import BatchServer
from sfagent.testing.guard import allow_model_requests, block_model_requests
from sfagent.testing.scripted import ScriptedModel
from sfagent.testing.server import DEFAULT_MODELS, LoopbackServer

__all__ = [
    "DEFAULT_MODELS",
    "BatchServer",
    "DemoModel",
    "Fault",
    "LoopbackServer",
    "OfflineModel",
    "RecordedRequest",
    "Reply",
    "ScriptedModel",
    "ScriptedToolCall",
    "allow_model_requests",
    "block_model_requests",
]
