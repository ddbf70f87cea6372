"""The run's spans over OpenTelemetry's API: the `RunTrace` the drivers are handed.

Only the first traced run imports this module (and OpenTelemetry). The run's span is opened by
`RunTrace.events` when the run starts and closed when its events end; every request and tool
call span names it as parent explicitly, because the run's events are handed out between
steps, where the caller's own context must stay current. A request's span is made current
only while the request is being sent (so HTTP instrumentation nests under it, and the client
reports its tries to it through `sfagent._observe`); a tool's span while the tool runs, on
whichever thread or task runs it.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from types import TracebackType
from typing import Any

from opentelemetry import context as otel_context, trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from sfagent._observe import TRY_OBSERVER
from sfagent._secret import Redactor, Secret
from sfagent._version import __version__
from sfagent.events import Event, RunFinished
from sfagent.messages import ChatCompletion, ChatCompletionChunk
from sfagent.models import AsyncModelStream, Model, ModelStream
from sfagent.run._tool_calls import CallOutcome, PreparedCall
from sfagent.settings import ChatRequest
from sfagent.tracing import _attributes as attrs
from sfagent.tracing._settings import TracingSettings

__all__ = ["run_trace"]

_TRACERS: dict[int, tuple[TracingSettings, Tracer]] = {}
_MAX_TRACERS = 64


def run_trace(
    settings: TracingSettings, model_name: str, redactor: Redactor | None = None
) -> RunSpans | None:
    """The spans of one run of an agent whose requests name `model_name`; ``None`` while no
    tracer provider is configured (every span would be a non-recording one).

    `redactor` cuts the agent's key out of everything a span records: a tool may echo it
    into its result, its error, or the next request's messages.
    """
    provider = settings.tracer_provider
    if provider is None:
        provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        # A provider set mid-run would record its later spans without their run's: none is
        # better than orphans, and this run costs what an untraced one does.
        return None
    return RunSpans(_tracer(settings), settings, model_name, redactor)


def _tracer(settings: TracingSettings) -> Tracer:
    held = _TRACERS.get(id(settings))
    if held is not None and held[0] is settings:
        return held[1]
    provider = settings.tracer_provider
    if provider is None:
        # A proxy: spans go to whatever global provider is set, now or later.
        tracer = trace.get_tracer("sfagent", __version__)
    else:
        tracer = provider.get_tracer("sfagent", __version__)
    if len(_TRACERS) >= _MAX_TRACERS:
        _TRACERS.clear()
    _TRACERS[id(settings)] = (settings, tracer)  # the settings kept alive: ids stay unique
    return tracer


class RunSpans:
    """One run's ``invoke_agent`` span and the spans under it (implements `RunTrace`)."""

    __slots__ = (
        "_context", "content", "model_name", "provider", "secret", "settings", "tracer",
    )  # fmt: skip

    def __init__(
        self,
        tracer: Tracer,
        settings: TracingSettings,
        model_name: str,
        secret: Redactor | None = None,
    ) -> None:
        self.tracer = tracer
        self.secret: Redactor = secret or Secret(None)
        self.settings = settings
        self.model_name = model_name
        self.provider = settings.provider_name
        self.content = settings.content()
        self._context: Context | None = None

    @property
    def context(self) -> Context | None:
        """The context whose current span is the run's (once it started)."""
        return self._context

    def model(self, model: Model) -> Model:
        """`model` with each request a ``chat`` span."""
        return _TracedModel(model, self)

    def tool(self, item: PreparedCall, turn: int) -> ToolSpan:
        """The ``execute_tool`` span of `item`, started when it runs."""
        return ToolSpan(self, item)

    def events(self, events: Iterator[Event]) -> Iterator[Event]:
        """`events` inside the run's span."""
        span = self._begin()
        result: Any = None
        try:
            for event in events:
                if isinstance(event, RunFinished):
                    result = event.result
                yield event
        except BaseException as exc:
            _end_run(span, None, exc, self.secret)
            raise
        finally:
            getattr(events, "close", _nothing)()
        _end_run(span, result, None, self.secret)

    async def aevents(self, events: AsyncIterator[Event]) -> AsyncIterator[Event]:
        """`events` of an async run inside the run's span."""
        span = self._begin()
        result: Any = None
        try:
            async for event in events:
                if isinstance(event, RunFinished):
                    result = event.result
                yield event
        except BaseException as exc:
            _end_run(span, None, exc, self.secret)
            raise
        finally:
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()
        _end_run(span, result, None, self.secret)

    def _begin(self) -> Span:
        name = self.settings.agent_name
        span = self.tracer.start_span(
            f"invoke_agent {name}" if name else "invoke_agent", kind=SpanKind.INTERNAL
        )
        if span.is_recording():
            span.set_attributes(attrs.run_attributes(self.provider, self.model_name, name))
        self._context = trace.set_span_in_context(span)
        return span

    def chat(self, request: ChatRequest) -> ChatSpan:
        """A ``chat`` span for `request`, started now."""
        return ChatSpan(self, request)


def _nothing() -> None:
    return None


def _end_run(span: Span, result: Any, error: BaseException | None, secret: Redactor) -> None:
    if span.is_recording():
        partial = getattr(error, "result", None) if error is not None else result
        usage = getattr(partial, "usage", None)
        if usage is not None:
            span.set_attributes(attrs.run_usage_attributes(usage))
        if error is not None:
            _failed(span, error, secret)
    span.end()


def _failed(span: Span, error: BaseException, secret: Redactor) -> None:
    kind = "cancelled" if _is_cancellation(error) else attrs.error_type(error)
    span.set_attribute(attrs.ERROR_TYPE, kind)
    said = secret.redact(str(error))
    span.set_status(Status(StatusCode.ERROR, f"{kind}: {said}" if said else kind))


def _record_exception(span: Span, error: BaseException, secret: Redactor) -> None:
    """The conventions' ``exception`` event, with the key cut out of its message and trace
    (`Span.record_exception` would copy both verbatim)."""
    trace_text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    span.add_event(
        "exception",
        {
            "exception.type": type(error).__qualname__,
            "exception.message": secret.redact(str(error)),
            "exception.stacktrace": secret.redact(trace_text),
        },
    )


def _is_cancellation(error: BaseException) -> bool:
    # A consumer that stopped reading a run's events, or a cancelled task: not the run's fault.
    return isinstance(error, GeneratorExit) or type(error).__name__ == "CancelledError"


# --- model requests ---------------------------------------------------------------------------


class ChatSpan:
    """The ``chat {model}`` span of one request; hears the client's tries (`TryObserver`).

    Used as a context manager around sending the request: the span is current meanwhile.
    """

    __slots__ = ("_run", "_tokens", "ended", "retries", "span", "trace_id")

    def __init__(self, run: RunSpans, request: ChatRequest) -> None:
        self._run = run
        span = run.tracer.start_span(
            f"chat {request.model}", context=run.context, kind=SpanKind.CLIENT
        )
        if span.is_recording():
            span.set_attributes(attrs.request_attributes(request, run.provider))
            if run.content:
                said = run.secret.redact(attrs.input_messages(request))
                span.set_attribute("gen_ai.input.messages", said)
        self.span = span
        self.trace_id: str | None = None
        self.retries = 0
        self.ended = False
        self._tokens: tuple[Any, Any] | None = None

    def __enter__(self) -> ChatSpan:
        context = trace.set_span_in_context(self.span, self._run.context)
        self._tokens = (otel_context.attach(context), TRY_OBSERVER.set(self))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        tokens = self._tokens
        if tokens is not None:
            self._tokens = None
            TRY_OBSERVER.reset(tokens[1])
            otel_context.detach(tokens[0])
        if exc is not None:
            self.fail(exc)

    # TryObserver
    def answered(self, attempt: int, status: int, trace_id: str | None) -> None:
        """Keep the answering try's trace id."""
        self.trace_id = trace_id

    def retrying(self, attempt: int, error: BaseException, delay: float) -> None:
        """Record a retry as a span event."""
        self.retries += 1
        if self.span.is_recording():
            event: attrs.Attributes = {
                attrs.RETRY_ATTEMPT: attempt,
                attrs.RETRY_DELAY: delay,
                **attrs.error_attributes(error),
            }
            self.span.add_event(attrs.RETRY_EVENT, event)

    def finish(self, response: ChatCompletion) -> None:
        """End the span with the answer."""
        if self.ended:
            return
        self.ended = True
        span = self.span
        if span.is_recording():
            span.set_attributes(attrs.response_attributes(response))
            self._common(span)
            if self._run.content:
                said = self._run.secret.redact(attrs.output_messages(response))
                span.set_attribute("gen_ai.output.messages", said)
        span.end()

    def fail(self, error: BaseException) -> None:
        """End the span with the error the request failed with."""
        if self.ended:
            return
        self.ended = True
        span = self.span
        if span.is_recording():
            if self.trace_id:
                span.set_attribute(attrs.TRACE_ID, self.trace_id)
            self._common(span)
            span.set_attributes(attrs.error_attributes(error))
            _failed(span, error, self._run.secret)
        span.end()

    def close(self) -> None:
        """End the span if nothing else did (a stream left before its end)."""
        if not self.ended:
            self.ended = True
            if self.span.is_recording():
                self._common(self.span)
            self.span.end()

    def _common(self, span: Span) -> None:
        if self.trace_id:
            span.set_attribute(attrs.TRACE_ID, self.trace_id)
        if self.retries:
            span.set_attribute(attrs.RETRIES, self.retries)


class _TracedModel:
    """A `Model` whose every request is a ``chat`` span under the run's."""

    __slots__ = ("_model", "_run", "model_name")

    def __init__(self, model: Model, run: RunSpans) -> None:
        self._model = model
        self._run = run
        self.model_name = run.model_name

    def complete(self, request: ChatRequest, *, timeout: float | None = None) -> ChatCompletion:
        chat = self._run.chat(request)
        with chat:
            response = self._model.complete(request, timeout=timeout)
        chat.finish(response)
        return response

    async def complete_async(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> ChatCompletion:
        chat = self._run.chat(request)
        with chat:
            response = await self._model.complete_async(request, timeout=timeout)
        chat.finish(response)
        return response

    def stream(self, request: ChatRequest, *, timeout: float | None = None) -> ModelStream:
        chat = self._run.chat(request)
        with chat:  # a model may send the request when asked for the stream
            inner = self._model.stream(request, timeout=timeout)
        return _TracedStream(inner, chat)

    def stream_async(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> AsyncModelStream:
        chat = self._run.chat(request)
        with chat:
            inner = self._model.stream_async(request, timeout=timeout)
        return _AsyncTracedStream(inner, chat)


class _TracedStream:
    """A `ModelStream` inside its request's span: sent (and retried) on enter, ended with the
    whole response or the error that cut it off."""

    __slots__ = ("_chat", "_inner")

    def __init__(self, inner: ModelStream, chat: ChatSpan) -> None:
        self._inner = inner
        self._chat = chat

    def __enter__(self) -> _TracedStream:
        with self._chat:
            self._inner.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Any:
        try:
            return self._inner.__exit__(exc_type, exc, tb)
        finally:
            if exc is not None:
                self._chat.fail(exc)
            self._chat.close()

    def __iter__(self) -> Iterator[ChatCompletionChunk]:
        return iter(self._inner)

    def get_final_response(self) -> ChatCompletion:
        response = self._inner.get_final_response()
        self._chat.finish(response)
        return response


class _AsyncTracedStream:
    """`_TracedStream` for async runs."""

    __slots__ = ("_chat", "_inner")

    def __init__(self, inner: AsyncModelStream, chat: ChatSpan) -> None:
        self._inner = inner
        self._chat = chat

    async def __aenter__(self) -> _AsyncTracedStream:
        with self._chat:
            await self._inner.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Any:
        try:
            return await self._inner.__aexit__(exc_type, exc, tb)
        finally:
            if exc is not None:
                self._chat.fail(exc)
            self._chat.close()

    def __aiter__(self) -> AsyncIterator[ChatCompletionChunk]:
        return self._inner.__aiter__()

    async def get_final_response(self) -> ChatCompletion:
        response = await self._inner.get_final_response()
        self._chat.finish(response)
        return response


# --- tool calls -------------------------------------------------------------------------------


class ToolSpan:
    """The ``execute_tool {name}`` span of one call (implements `ToolTrace`)."""

    __slots__ = ("_ended", "_item", "_lock", "_run", "_span")

    def __init__(self, run: RunSpans, item: PreparedCall) -> None:
        self._run = run
        self._item = item
        self._span: Span | None = None
        self._ended = False
        # A call given up on is ended by the driver while its thread may still finish it.
        self._lock = threading.Lock()

    def _start(self) -> Span:
        run = self._run
        span = run.tracer.start_span(
            f"execute_tool {self._item.call.function.name}",
            context=run.context,
            kind=SpanKind.INTERNAL,
        )
        if span.is_recording():
            span.set_attributes(attrs.tool_attributes(self._item))
            if run.content:
                arguments = run.secret.redact(self._item.call.function.arguments)
                span.set_attribute("gen_ai.tool.call.arguments", arguments)
        self._span = span
        return span

    def run(self, work: Callable[[], CallOutcome]) -> CallOutcome:
        """Run `work` with the span current, then end the span with its outcome."""
        span = self._start()
        token = otel_context.attach(trace.set_span_in_context(span, self._run.context))
        try:
            outcome = work()
        except BaseException as exc:
            self._end(None, exc)
            raise
        finally:
            otel_context.detach(token)
        self.end(outcome)
        return outcome

    async def arun(self, work: Callable[[], Awaitable[CallOutcome]]) -> CallOutcome:
        """`run` for a coroutine; work it sends to a thread carries the span along."""
        span = self._start()
        token = otel_context.attach(trace.set_span_in_context(span, self._run.context))
        try:
            outcome = await work()
        except BaseException as exc:
            self._end(None, exc)
            raise
        finally:
            otel_context.detach(token)
        self.end(outcome)
        return outcome

    def end(self, outcome: CallOutcome | None) -> None:
        """End the span with `outcome`, unless it has ended."""
        self._end(outcome, None)

    def _end(self, outcome: CallOutcome | None, error: BaseException | None) -> None:
        with self._lock:
            if self._ended:
                return
            self._ended = True
            span = self._span if self._span is not None else self._start()
        if span.is_recording():
            if error is not None:
                _failed(span, error, self._run.secret)
            else:
                self._record(span, outcome)
        span.end()

    def _record(self, span: Span, outcome: CallOutcome | None) -> None:
        kind = attrs.outcome_error(outcome)
        if kind is not None:
            span.set_attribute(attrs.ERROR_TYPE, kind)
            raised = outcome.exception if outcome is not None else None
            if raised is not None:
                _record_exception(span, raised, self._run.secret)
                said = self._run.secret.redact(str(raised))
                span.set_status(Status(StatusCode.ERROR, f"{kind}: {said}"))
            else:
                span.set_status(Status(StatusCode.ERROR, kind))
        if self._run.content:
            result = self._run.secret.redact(attrs.tool_result(self._item, outcome))
            span.set_attribute("gen_ai.tool.call.result", result)
