"""The tools tests check every fast schema they make against the pydantic path.

Set when this directory is collected, before its modules define their tools: every tool these
tests define whose schema is written by `sfagent.tools._fast_schema` is also built the pydantic
way, and defining it fails unless the two schemas are the same bytes.
"""

from __future__ import annotations

from sfagent.tools import _fast_check

_fast_check.VERIFY = True
