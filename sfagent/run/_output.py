"""Structured output: the schema the final answer must follow, and checking it.

Pure: no I/O. The loop asks the model for JSON (``json_schema`` where it works, else
``json_object`` with the schema in the instructions), validates the answer with the same
pydantic definition the schema came from, and re-asks with the errors when it does not fit.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import TypeAdapter, ValidationError

from sfagent.exceptions import UserError
from sfagent.tools._arguments import problems_from_pydantic, strip_code_fence
from sfagent.tools._json_schema import inline_refs, strip_titles

OutputMode = Literal["json_schema", "json_object"]
"""How the answer's JSON is requested: the schema sent as ``response_format``, or only
``{"type": "json_object"}`` with the schema in the instructions."""

_NAME = re.compile(r"[^a-zA-Z0-9_-]")


_SCHEMA_MARKER = "matches this JSON schema: "


class OutputInvalid(ValueError):
    """The answer does not fit the output type; the text is written for the model."""


class OutputSpec:
    """An output type's JSON schema and validator, built once per agent."""

    def __init__(self, output_type: Any) -> None:
        try:
            self.adapter: TypeAdapter[Any] = TypeAdapter(output_type)
            raw = self.adapter.json_schema()
        except Exception as exc:  # pydantic raises several kinds for unusable types
            raise UserError(f"output_type {output_type!r} has no JSON schema: {exc}") from None
        self.schema: dict[str, Any] = inline_refs(strip_titles(raw))
        name = getattr(output_type, "__name__", "output")
        self.name = _NAME.sub("_", str(name))[:64] or "output"
        # Wrapping a non-object type keeps json_object mode usable (it wants an object).
        self.wrapped = self.schema.get("type") != "object"
        if self.wrapped:
            self.schema = {
                "type": "object",
                "properties": {"result": self.schema},
                "required": ["result"],
            }

    def response_format(self, mode: OutputMode) -> dict[str, Any]:
        """The ``response_format`` to send in `mode`."""
        if mode == "json_schema":
            return {
                "type": "json_schema",
                "json_schema": {"name": self.name, "schema": self.schema},
            }
        return {"type": "json_object"}

    def instructions(self) -> str:
        """The instruction appended to the system prompt (needed in ``json_object`` mode)."""
        schema = json.dumps(self.schema, ensure_ascii=False, separators=(",", ":"))
        return (
            "When you give your final answer, reply with only a JSON object (no prose, no code "
            f"fence) that {_SCHEMA_MARKER}{schema}"
        )

    def validate(self, content: str | None) -> Any:
        """Return the validated output.

        Raises:
            OutputInvalid: the text is not JSON or does not match; the message says why.
        """
        text = strip_code_fence((content or "").strip())
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise OutputInvalid(f"the answer is not valid JSON ({exc.msg})") from None
        if self.wrapped:
            if not isinstance(data, dict) or "result" not in data:
                raise OutputInvalid('the answer must be a JSON object with a "result" key')
            data = data["result"]
        try:
            return self.adapter.validate_python(data)
        except ValidationError as exc:
            problems = problems_from_pydantic(exc.errors(include_url=False))
            raise OutputInvalid("; ".join(str(p) for p in problems)) from None

    @staticmethod
    def retry_prompt(reason: str) -> str:
        """The user message that asks the model to fix its answer."""
        return (
            f"Your answer did not match the required JSON schema: {reason}. "
            "Reply again with only the corrected JSON object."
        )
