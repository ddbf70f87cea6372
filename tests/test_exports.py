"""The public surface: every name in `sfagent.__all__` resolves, and the list is pinned."""

from __future__ import annotations

import subprocess
import sys

import pytest

import sfagent

PUBLIC = {
    # tools
    "tool", "Tool", "ToolSet", "tool_result_text", "RunContext", "ApprovalRequest", "RunUsage",
    "Steps",
    # sessions
    "Session", "SessionStore", "SQLiteSessionStore", "MemorySessionStore", "TrimByCount",
    "TrimByTokens", "Trimmer", "SessionError", "SessionStoreError",
    # the agent
    "Agent", "RunResult", "TurnRecord", "ToolCallRecord",
    "Event", "TextDelta", "ReasoningDelta", "ToolCallStarted", "ToolCallsFromText", "ToolResult",
    "TurnFinished", "RunFinished", "NestedEvent",
    # models and the client
    "Model", "ModelStream", "AsyncModelStream", "HTTPModel",
    "SiliconFlow", "AsyncSiliconFlow", "ChatStream", "AsyncChatStream", "RetryPolicy",
    "ModelSettings", "ChatRequest", "DEFAULT_MODEL", "StreamAccumulator",
    # wire models
    "SystemMessage", "UserMessage", "AssistantMessage", "ToolMessage", "Message", "MessageBase",
    "TextPart", "ImagePart", "ImageURL", "VideoPart", "AudioPart", "ToolCall", "FunctionCall",
    "ChatCompletion", "Choice", "ChatCompletionChunk", "Usage", "image_part", "parse_message",
    "parse_messages",
    # errors
    "SFAgentError", "UserError", "ToolDefinitionError", "ConfigurationError",
    "ToolArgumentsError", "ArgumentProblem", "ToolOutputError", "ModelRetry", "StopRun",
    "AgentRunError", "MaxTurnsExceeded", "BudgetExceeded", "ToolRetriesExceeded",
    "ToolSelectionError",
    "RunawayLoopError", "OutputTruncatedError", "OutputValidationError", "ModelRequestError",
    "APIError", "APIConnectionError", "APITimeoutError", "APIResponseValidationError",
    "ResponseTooLargeError", "IncompleteStreamError", "APIStatusError", "BadRequestError",
    "AuthenticationError",
    "PermissionDeniedError", "NotFoundError", "RateLimitError", "InternalServerError",
    "ServiceUnavailableError", "GatewayTimeoutError",
}  # fmt: skip


def test_public_names_are_pinned() -> None:
    assert set(sfagent.__all__) == PUBLIC | {"__version__"}


def test_every_public_name_resolves_and_is_documented() -> None:
    for name in PUBLIC:
        value = getattr(sfagent, name)
        if callable(value) and not isinstance(value, str):
            assert getattr(value, "__doc__", None), f"{name} has no docstring"


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="does_not_exist"):
        sfagent.does_not_exist  # noqa: B018


def test_import_is_lazy() -> None:
    heavy = "('httpx', 'pydantic', 'jsonschema')"
    code = f"import sys, sfagent; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_importing_agent_and_tool_loads_no_heavy_dependency() -> None:
    # What a script's first line pays: the wire models, schema machinery and HTTP stack load
    # when an agent is made, a tool is defined or a request is sent.
    heavy = "('httpx', 'pydantic', 'pydantic_core', 'jsonschema', 'docstring_parser', 'asyncio')"
    code = (
        "import sys\n"
        "from sfagent import Agent, tool\n"
        f"print(sorted(m for m in {heavy} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_closing_an_offline_agent_loads_no_http_stack() -> None:
    code = (
        "import sys\n"
        "from sfagent import Agent\n"
        "class Silent:\n"
        "    def complete(self, request, *, timeout=None): raise AssertionError\n"
        "    stream = complete_async = stream_async = complete\n"
        "Agent(Silent()).close()\n"
        "print('sfagent.client.http_model' in sys.modules, 'httpx' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


def test_the_loop_core_and_the_sync_path_import_neither_httpx_nor_asyncio() -> None:
    # The design's pure core (schemas, the loop's decisions) does no I/O; a sync run with an
    # offline model never loads asyncio either.
    modules = "sfagent.tools, sfagent.run._loop, sfagent.run._limits, sfagent.run._state"
    code = (
        f"import sys, {modules}\n"
        "from sfagent import Agent, ChatCompletion\n"
        "class Fixed:\n"
        "    def complete(self, request, *, timeout=None):\n"
        "        message = {'role': 'assistant', 'content': 'hi'}\n"
        "        choice = {'message': message, 'finish_reason': 'stop'}\n"
        "        return ChatCompletion.model_validate({'choices': [choice]})\n"
        "    stream = complete_async = stream_async = complete\n"
        "assert Agent(Fixed()).run_sync('hello').output == 'hi'\n"
        "print(sorted({'httpx', 'asyncio'} & set(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
