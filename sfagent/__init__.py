"""sfagent: tool-calling agents on SiliconFlow's chat-completions API.

Every public name is importable from here. Submodules load on first use (PEP 562), so
``import sfagent`` stays cheap and a run pays only for what it touches.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sfagent._lazy import lazy_exports
from sfagent._version import __version__

# Defining module -> the public names it provides. The typed imports below say the same for
# type checkers (`X as X` marks a re-export); a test keeps the two equal.
_EXPORTS: dict[str, tuple[str, ...]] = {
    "sfagent.tools.tool": ("tool", "Tool", "tool_result_text"),
    "sfagent.tools.toolset": ("ToolSet",),
    "sfagent.context": ("RunContext", "ApprovalRequest"),
    "sfagent.steps": ("Steps",),
    "sfagent.sessions.store": ("Session", "SessionStore", "SessionError", "SessionStoreError"),
    "sfagent.sessions.sqlite": ("SQLiteSessionStore",),
    "sfagent.sessions.memory": ("MemorySessionStore",),
    "sfagent.sessions.trimming": ("TrimByCount", "TrimByTokens", "Trimmer"),
    "sfagent.usage": ("RunUsage",),
    "sfagent.agent": ("Agent",),
    "sfagent.result": ("RunResult", "TurnRecord", "ToolCallRecord"),
    "sfagent.events": (
        "Event",
        "TextDelta",
        "ReasoningDelta",
        "ToolCallStarted",
        "ToolCallsFromText",
        "ToolResult",
        "NestedEvent",
        "TurnFinished",
        "RunFinished",
    ),
    "sfagent.models": ("Model", "ModelStream", "AsyncModelStream"),
    "sfagent.client.http_model": ("HTTPModel",),
    "sfagent.client.clients": ("SiliconFlow", "AsyncSiliconFlow"),
    "sfagent.client.streams": ("ChatStream", "AsyncChatStream"),
    "sfagent.client.retry": ("RetryPolicy",),
    "sfagent.settings": ("ModelSettings", "ChatRequest", "DEFAULT_MODEL"),
    "sfagent.messages": (
        "SystemMessage",
        "UserMessage",
        "AssistantMessage",
        "ToolMessage",
        "Message",
        "MessageBase",
        "TextPart",
        "ImagePart",
        "ImageURL",
        "VideoPart",
        "AudioPart",
        "ToolCall",
        "FunctionCall",
        "ChatCompletion",
        "Choice",
        "ChatCompletionChunk",
        "Usage",
        "image_part",
        "parse_message",
        "parse_messages",
    ),
    "sfagent.client.accumulator": ("StreamAccumulator",),
    "sfagent.exceptions": (
        "SFAgentError",
        "UserError",
        "ToolDefinitionError",
        "ConfigurationError",
        "ToolArgumentsError",
        "ArgumentProblem",
        "ToolOutputError",
        "ModelRetry",
        "StopRun",
        "AgentRunError",
        "MaxTurnsExceeded",
        "BudgetExceeded",
        "ToolRetriesExceeded",
        "ToolSelectionError",
        "RunawayLoopError",
        "OutputTruncatedError",
        "OutputValidationError",
        "ModelRequestError",
        "APIError",
        "APIConnectionError",
        "APITimeoutError",
        "APIResponseValidationError",
        "ResponseTooLargeError",
        "IncompleteStreamError",
        "APIStatusError",
        "BadRequestError",
        "AuthenticationError",
        "PermissionDeniedError",
        "NotFoundError",
        "RateLimitError",
        "InternalServerError",
        "ServiceUnavailableError",
        "GatewayTimeoutError",
    ),
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, eager=["__version__"])

if TYPE_CHECKING:
    from sfagent.agent import Agent as Agent
    from sfagent.client.accumulator import StreamAccumulator as StreamAccumulator
    from sfagent.client.clients import (
        AsyncSiliconFlow as AsyncSiliconFlow,
        SiliconFlow as SiliconFlow,
    )
    from sfagent.client.http_model import HTTPModel as HTTPModel
    from sfagent.client.retry import RetryPolicy as RetryPolicy
    from sfagent.client.streams import AsyncChatStream as AsyncChatStream, ChatStream as ChatStream
    from sfagent.context import ApprovalRequest as ApprovalRequest, RunContext as RunContext
    from sfagent.events import (
        Event as Event,
        NestedEvent as NestedEvent,
        ReasoningDelta as ReasoningDelta,
        RunFinished as RunFinished,
        TextDelta as TextDelta,
        ToolCallsFromText as ToolCallsFromText,
        ToolCallStarted as ToolCallStarted,
        ToolResult as ToolResult,
        TurnFinished as TurnFinished,
    )
    from sfagent.exceptions import (
        AgentRunError as AgentRunError,
        APIConnectionError as APIConnectionError,
        APIError as APIError,
        APIResponseValidationError as APIResponseValidationError,
        APIStatusError as APIStatusError,
        APITimeoutError as APITimeoutError,
        ArgumentProblem as ArgumentProblem,
        AuthenticationError as AuthenticationError,
        BadRequestError as BadRequestError,
        BudgetExceeded as BudgetExceeded,
        ConfigurationError as ConfigurationError,
        GatewayTimeoutError as GatewayTimeoutError,
        IncompleteStreamError as IncompleteStreamError,
        InternalServerError as InternalServerError,
        MaxTurnsExceeded as MaxTurnsExceeded,
        ModelRequestError as ModelRequestError,
        ModelRetry as ModelRetry,
        NotFoundError as NotFoundError,
        OutputTruncatedError as OutputTruncatedError,
        OutputValidationError as OutputValidationError,
        PermissionDeniedError as PermissionDeniedError,
        RateLimitError as RateLimitError,
        ResponseTooLargeError as ResponseTooLargeError,
        RunawayLoopError as RunawayLoopError,
        ServiceUnavailableError as ServiceUnavailableError,
        SFAgentError as SFAgentError,
        StopRun as StopRun,
        ToolArgumentsError as ToolArgumentsError,
        ToolDefinitionError as ToolDefinitionError,
        ToolOutputError as ToolOutputError,
        ToolRetriesExceeded as ToolRetriesExceeded,
        ToolSelectionError as ToolSelectionError,
        UserError as UserError,
    )
    from sfagent.messages import (
        AssistantMessage as AssistantMessage,
        AudioPart as AudioPart,
        ChatCompletion as ChatCompletion,
        ChatCompletionChunk as ChatCompletionChunk,
        Choice as Choice,
        FunctionCall as FunctionCall,
        ImagePart as ImagePart,
        ImageURL as ImageURL,
        Message as Message,
        MessageBase as MessageBase,
        SystemMessage as SystemMessage,
        TextPart as TextPart,
        ToolCall as ToolCall,
        ToolMessage as ToolMessage,
        Usage as Usage,
        UserMessage as UserMessage,
        VideoPart as VideoPart,
        image_part as image_part,
        parse_message as parse_message,
        parse_messages as parse_messages,
    )
    from sfagent.models import (
        AsyncModelStream as AsyncModelStream,
        Model as Model,
        ModelStream as ModelStream,
    )
    from sfagent.result import (
        RunResult as RunResult,
        ToolCallRecord as ToolCallRecord,
        TurnRecord as TurnRecord,
    )
    from sfagent.sessions.memory import MemorySessionStore as MemorySessionStore
    from sfagent.sessions.sqlite import SQLiteSessionStore as SQLiteSessionStore
    from sfagent.sessions.store import (
        Session as Session,
        SessionError as SessionError,
        SessionStore as SessionStore,
        SessionStoreError as SessionStoreError,
    )
    from sfagent.sessions.trimming import (
        TrimByCount as TrimByCount,
        TrimByTokens as TrimByTokens,
        Trimmer as Trimmer,
    )
    from sfagent.settings import (
        DEFAULT_MODEL as DEFAULT_MODEL,
        ChatRequest as ChatRequest,
        ModelSettings as ModelSettings,
    )
    from sfagent.steps import Steps as Steps
    from sfagent.tools.tool import Tool as Tool, tool as tool, tool_result_text as tool_result_text
    from sfagent.tools.toolset import ToolSet as ToolSet
    from sfagent.usage import RunUsage as RunUsage
