"""What each request of a run asks the endpoint for, and what it does when one is refused.

Pure: the agent's settings, adjusted for the run (structured output's ``response_format``, a
forced ``tool_choice`` released once tools have run), and the one retry without a feature an
endpoint answered with a 400 (``tool_choice="required"``, ``json_schema`` output).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from sfagent.exceptions import APIError, BadRequestError
from sfagent.run._output import OutputMode
from sfagent.run._state import LoopConfig, RunState
from sfagent.settings import ModelSettings

logger = logging.getLogger("sfagent")


def system_prompt(config: LoopConfig) -> str | None:
    """The instructions plus, for structured output, the schema the answer must follow."""
    parts = [config.instructions] if config.instructions else []
    if config.output is not None:
        parts.append(config.output.instructions())
    return "\n\n".join(parts) or None


def wants_required(settings: ModelSettings | None) -> bool:
    """`tool_choice` is "required"."""
    return settings is not None and settings.tool_choice == "required"


def forces_a_call(settings: ModelSettings | None) -> bool:
    """`tool_choice` is "required" or names a function."""
    choice = settings.tool_choice if settings is not None else None
    return choice == "required" or isinstance(choice, Mapping)


def output_mode(config: LoopConfig, state: RunState) -> OutputMode:
    """How structured output is asked for: the agent's mode, unless the endpoint refused it."""
    if config.output_mode == "json_schema" and not state.endpoint.json_schema:
        return "json_object"
    return config.output_mode


def request_settings(config: LoopConfig, state: RunState) -> ModelSettings | None:
    """The settings the run's next requests carry, after what it learned and decided."""
    extra: dict[str, Any] = {}
    if forces_a_call(config.settings) and not state.choice_forced:
        extra["tool_choice"] = "auto"
    if config.output is not None:
        extra["response_format"] = config.output.response_format(output_mode(config, state))
    if not extra:
        return config.settings
    override = ModelSettings(**extra)
    return config.settings.merge(override) if config.settings is not None else override


def downgrade(config: LoopConfig, state: RunState, exc: APIError) -> bool:
    """Retry once without a feature the endpoint rejected with a 400 (and report that)."""
    if not isinstance(exc, BadRequestError):
        return False
    text = exc.message.lower()
    required = wants_required(config.settings) and state.endpoint.tool_choice_required
    if required and "tool_choice" in text:
        logger.warning("endpoint rejected tool_choice='required'; using 'auto' instead")
        state.choice_forced = False
        state.endpoint = replace(state.endpoint, tool_choice_required=False)
    elif output_mode(config, state) == "json_schema" and (
        "json_schema" in text or "response_format" in text
    ):
        logger.warning("endpoint rejected json_schema output; using json_object instead")
        state.endpoint = replace(state.endpoint, json_schema=False)
    else:
        return False
    if state.learned is not None:
        state.learned(state.endpoint)
    state.settings = request_settings(config, state)
    return True
