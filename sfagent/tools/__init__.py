"""Python callables as checked `tools` entries: one definition, two views.

A tool's JSON schema (what the model sees) and its validator (what checks the model's
arguments) come from one definition, built when the tool is defined:

- `tool` / `Tool` (`sfagent.tools.tool`): a function, its options, and running its calls;
- `ToolSet` (`sfagent.tools.toolset`): the ordered, checked collection a request carries;
- private modules: docstring reading, signature to schema and validator, JSON-schema
  transforms and the meta-schema check, and the model's argument text to a dict.
"""

from sfagent.tools.tool import MAX_TOOLS, NAME_PATTERN, Tool, tool, tool_result_text
from sfagent.tools.toolset import ToolSet

__all__ = ["MAX_TOOLS", "NAME_PATTERN", "Tool", "ToolSet", "tool", "tool_result_text"]
