"""Models that answer without a network: the built-in demo model and the pieces it is made of.

- `DemoModel` (`sfagent.offline.demo`): calls the tools it is given, then sums up; what
  `sfagent run` uses when no API key is set.
- `OfflineModel` (`.model`): the base class; subclasses pick a `Reply` per request.
- `Reply`, `ScriptedToolCall` (`.replies`): what an offline model or the loopback server
  answers, and the SiliconFlow-shaped payloads it becomes.

The test helpers built on these (`ScriptedModel`, `LoopbackServer`) are in `sfagent.testing`.
"""

from sfagent.offline.demo import DemoModel
from sfagent.offline.model import OfflineModel
from sfagent.offline.replies import Fault, RecordedRequest, Reply, ScriptedToolCall

__all__ = ["DemoModel", "Fault", "OfflineModel", "RecordedRequest", "Reply", "ScriptedToolCall"]
