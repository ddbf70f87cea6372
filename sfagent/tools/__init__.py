"""Python callables as checked `tools` entries: one definition, two views.

A tool's JSON schema (what the model sees) and its validator (what checks the model's
arguments) come from one definition, built when the tool is defined:

- `tool` / `Tool` / `ToolOptions` (`sfagent.tools.tool`): a function, its options, and
  running its calls;
- `ToolSet` (`sfagent.tools.toolset`): the ordered, checked collection a request carries;
- private modules, one job each: the model's argument text to a dict (`_arguments`),
  docstrings (`_docstrings`), JSON-schema transforms (`_json_schema`), the meta-schema check
  (`_meta_schema`), and a tool's parameters as one object with `bind`: from a signature
  (`_signature`) or from a given JSON schema (`_parameters`). A signature's parameters become
  the pydantic class that validates them and the schema pydantic makes of it
  (`_pydantic_schema`); for common shapes that schema is written in one pass instead
  (`_fast_schema`, held to the same bytes by `_fast_check`) and the class is built on the
  tool's first call.

The request limits the tools must meet (128 tools, the name pattern) are
`sfagent.settings`'s; this package applies them when a tool or a set is defined.
"""

from sfagent.tools.tool import MAX_TOOLS, NAME_PATTERN, Tool, ToolOptions, tool, tool_result_text
from sfagent.tools.toolset import ToolSet

__all__ = [
    "MAX_TOOLS",
    "NAME_PATTERN",
    "Tool",
    "ToolOptions",
    "ToolSet",
    "tool",
    "tool_result_text",
]
