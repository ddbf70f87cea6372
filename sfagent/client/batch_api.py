"""SiliconFlow's batch API: half-price offline chat completions, as a pure core and an async shell.

The flow: upload a JSONL file (``POST /files``, ``purpose=batch``), create a batch over it
(``POST /batches``), poll it (``GET /batches/{id}``) until it is finished, then download its
output and error files (``GET /files/{id}/content``) and map their lines back by ``custom_id``.

The pure part builds the input files (`build_input_files`: one model per file, at most
`MAX_LINES_PER_FILE` lines, single-turn requests without tools), reads SiliconFlow's answers
(`unwrap`, `BatchFile.from_payload`, `Batch.from_payload`) and parses the result files
(`parse_results`). `AsyncBatchAPI` only moves bytes: it reuses `ClientCore` for the base URL,
the credentials, status → typed error and retry bookkeeping, and `areceive` for bounded bodies.

What comes from SiliconFlow's published docs and what is assumed (no captures exist):

- documented: the endpoints and their fields; the upload answer wrapped as ``{"code": 20000,
  "message": "Ok", "status": true, "data": {...}}`` (with ``createdAt``); the create and list
  answers plain, in OpenAI's format; ``custom_id`` unique per file; ``messages`` of system,
  user or assistant ending with a user message; at most 5,000 lines; one model per file;
  ``completion_window`` from 24 to 336 hours; ``metadata`` up to 16 string pairs;
- assumed: that any answer may come wrapped or plain (both are read); the result lines in
  OpenAI's format (``{"custom_id", "response": {"status_code", "body"}, "error"}``); that a
  file id may be a download URL (the guide speaks of result-file URLs valid for a month:
  such a URL is fetched without the key, which must not leave for another host).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import httpx
from pydantic import ValidationError

from sfagent.client._body import DEFAULT_MAX_RESPONSE_BYTES, check_max_bytes
from sfagent.client._core import ClientCore
from sfagent.client._reading import Failure, areceive
from sfagent.client._within import within
from sfagent.client.error_bodies import (
    error_from_stream_payload,
    parse_error_body,
    parse_json_body,
    redacted_excerpt,
)
from sfagent.client.retry import RetryPolicy
from sfagent.client.streams import is_timeout
from sfagent.exceptions import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APITimeoutError,
    ConfigurationError,
    UserError,
)
from sfagent.messages import ChatCompletion
from sfagent.settings import ChatRequest

__all__ = [
    "BATCH_ENDPOINT",
    "FINISHED_STATUSES",
    "JOB_METADATA_KEY",
    "MAX_LINES_PER_FILE",
    "STATUSES",
    "AsyncBatchAPI",
    "Batch",
    "BatchFile",
    "BatchInputError",
    "BatchInputFile",
    "BatchRequestFailure",
    "BatchResult",
    "BatchResults",
    "MalformedLine",
    "RequestCounts",
    "build_input_files",
    "completion_window",
    "input_line",
    "parse_results",
    "unwrap",
]

BATCH_ENDPOINT = "/v1/chat/completions"
"""The one endpoint a batch may target (SiliconFlow's docs)."""

MAX_LINES_PER_FILE = 5000
"""The most lines one input file may hold (SiliconFlow's docs)."""

STATUSES = (
    "in_queue",
    "in_progress",
    "finalizing",
    "completed",
    "expired",
    "cancelling",
    "cancelled",
)
"""The statuses SiliconFlow documents, in the order a batch may pass through them."""

FINISHED_STATUSES = frozenset({"completed", "expired", "cancelled", "failed"})
"""Statuses after which a batch changes no more (``failed`` is OpenAI's; tolerated)."""

JOB_METADATA_KEY = "sfagent_job"
"""The metadata key that names the job a batch belongs to, to find it again on resume."""

DIGEST_METADATA_KEY = "sfagent_digest"
"""The metadata key holding the input file's digest: a resumed job whose file changed differs."""

_ROLES = frozenset({"system", "user", "assistant"})
_OK_CODES = frozenset({0, 200, 20000})


class BatchInputError(UserError):
    """A request that cannot go into a batch file (tools, streaming, not ending with a user...).

    Attributes:
        custom_id: The request's id.
        reason: What is wrong with it.
    """

    def __init__(self, custom_id: str, reason: str) -> None:
        self.custom_id = custom_id
        self.reason = reason
        super().__init__(f"batch request {custom_id!r}: {reason}")


# --- the objects the API answers with -------------------------------------------------------


@dataclass(frozen=True)
class BatchFile:
    """An uploaded file.

    Attributes:
        id: The file id (``file-...``).
        bytes: Its size, when the server says.
        filename: Its name, when the server says.
        purpose: ``"batch"`` for batch input.
        created_at: Unix seconds, when the server says.
    """

    id: str
    bytes: int | None = None
    filename: str | None = None
    purpose: str | None = None
    created_at: int | None = None

    @classmethod
    def from_payload(cls, payload: object) -> BatchFile:
        """Read a file object, wrapped or plain (SiliconFlow writes ``createdAt``).

        Raises:
            APIResponseValidationError: It has no id.
            APIStatusError: A wrapped answer that reports a failure.
        """
        data = _object(unwrap(payload), "file")
        created = data.get("created_at", data.get("createdAt"))
        return cls(
            id=_text_id(data, "file"),
            bytes=_int_or_none(data.get("bytes")),
            filename=_str_or_none(data.get("filename")),
            purpose=_str_or_none(data.get("purpose")),
            created_at=_int_or_none(created),
        )


@dataclass(frozen=True)
class RequestCounts:
    """How many of a batch's requests are done, and how many failed."""

    total: int = 0
    completed: int = 0
    failed: int = 0


@dataclass(frozen=True)
class Batch:
    """A batch job, as ``GET /batches/{id}`` describes it.

    Attributes:
        id: The batch id.
        status: One of `STATUSES` (any other string is kept as sent).
        input_file_id: The uploaded input.
        output_file_id: The answers, once there are any.
        error_file_id: The failed lines, once there are any.
        request_counts: Progress, when the server reports it (``null`` while queued).
        created_at: Unix seconds.
        completed_at: Unix seconds, once completed.
        expires_at: Unix seconds after which an unfinished batch expires.
        metadata: The string pairs it was created with.
        completion_window: E.g. ``"24h"``.
        raw: The object as received, for fields not read here.
    """

    id: str
    status: str
    input_file_id: str | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    request_counts: RequestCounts | None = None
    created_at: int | None = None
    completed_at: int | None = None
    expires_at: int | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    completion_window: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def finished(self) -> bool:
        """Whether the batch will change no more (completed, expired, cancelled, failed)."""
        return self.status in FINISHED_STATUSES

    @classmethod
    def from_payload(cls, payload: object) -> Batch:
        """Read a batch object, wrapped or plain.

        Raises:
            APIResponseValidationError: It has no id or no status.
            APIStatusError: A wrapped answer that reports a failure.
        """
        data = _object(unwrap(payload), "batch")
        status = data.get("status")
        if not isinstance(status, str) or not status:
            raise _invalid("The batch has no status", data)
        meta = data.get("metadata")
        return cls(
            id=_text_id(data, "batch"),
            status=status,
            input_file_id=_str_or_none(data.get("input_file_id")),
            output_file_id=_str_or_none(data.get("output_file_id")) or None,
            error_file_id=_str_or_none(data.get("error_file_id")) or None,
            request_counts=_counts(data.get("request_counts")),
            created_at=_int_or_none(data.get("created_at")),
            completed_at=_int_or_none(data.get("completed_at")),
            expires_at=_int_or_none(data.get("expires_at")),
            metadata={str(k): str(v) for k, v in meta.items()} if isinstance(meta, dict) else {},
            completion_window=_str_or_none(data.get("completion_window")),
            raw=data,
        )


def unwrap(payload: object) -> object:
    """SiliconFlow's ``{"code", "message", "status", "data"}`` envelope removed, if present.

    A plain OpenAI-format answer comes back unchanged (a list's ``{"object": "list", "data"}``
    is not an envelope).

    Raises:
        APIStatusError: An envelope whose ``status`` is false or whose code is not 20000
            (typed by its code, as an error object after HTTP 200 is).
    """
    if not isinstance(payload, dict) or "data" not in payload:
        return payload
    if payload.get("object") == "list" or not ("code" in payload or "status" in payload):
        return payload
    code = payload.get("code")
    failed = payload.get("status") is False or (
        code is not None and not (isinstance(code, int) and code in _OK_CODES)
    )
    if failed:
        raise error_from_stream_payload(payload)
    return payload["data"]


def completion_window(hours: float | str) -> str:
    """The ``completion_window`` for a number of hours (24 to 336), e.g. ``"24h"``.

    Raises:
        ConfigurationError: Outside 24-336 hours, or not a whole number of them.
    """
    text = str(hours).strip().lower().removesuffix("h")
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (24 <= value <= 336) or value != int(value):
        raise ConfigurationError(
            f"completion_window must be 24 to 336 whole hours (SiliconFlow), got {hours!r}"
        )
    return f"{int(value)}h"


_as_window = completion_window  # for methods whose argument of that name hides it


# --- building the input files ---------------------------------------------------------------


@dataclass(frozen=True)
class BatchInputFile:
    """One JSONL file to upload: the requests of one model, at most `MAX_LINES_PER_FILE`.

    Attributes:
        model: The model every line asks for.
        custom_ids: The lines' ids, in file order.
        content: The JSONL bytes, one request per line.
    """

    model: str
    custom_ids: tuple[str, ...]
    content: bytes = field(repr=False)

    @property
    def digest(self) -> str:
        """The content's SHA-256 (16 hex digits): the same requests give the same digest."""
        return hashlib.sha256(self.content).hexdigest()[:16]

    def metadata(self, job: str) -> dict[str, str]:
        """The metadata that finds this file's batch again: the job and the content digest."""
        return {JOB_METADATA_KEY: job, DIGEST_METADATA_KEY: self.digest}


def input_line(custom_id: str, request: ChatRequest | Mapping[str, Any]) -> dict[str, Any]:
    """One line of a batch file: ``{"custom_id", "method", "url", "body"}``.

    Raises:
        BatchInputError: The request uses tools or streaming, has no model, or its messages
            are not system/user/assistant ones ending with a user message.
    """
    if not isinstance(custom_id, str) or not custom_id:
        raise BatchInputError(str(custom_id), "custom_id must be a non-empty string")
    body = request.to_body() if isinstance(request, ChatRequest) else dict(request)
    if body.get("tools"):
        raise BatchInputError(custom_id, "batches are single-turn: requests with tools cannot go")
    if body.get("stream"):
        raise BatchInputError(custom_id, "batch requests cannot stream")
    body.pop("stream", None)
    body.pop("stream_options", None)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BatchInputError(custom_id, "the request names no model")
    _check_messages(custom_id, body.get("messages"))
    return {"custom_id": custom_id, "method": "POST", "url": BATCH_ENDPOINT, "body": body}


def _check_messages(custom_id: str, messages: object) -> None:
    if not isinstance(messages, list) or not messages:
        raise BatchInputError(custom_id, "the request has no messages")
    for number, message in enumerate(messages, 1):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in _ROLES:
            raise BatchInputError(
                custom_id, f"message {number} has role {role!r}; batches take system/user/assistant"
            )
    if messages[-1].get("role") != "user":
        raise BatchInputError(custom_id, "the messages must end with a user message")


def build_input_files(
    requests: Iterable[tuple[str, ChatRequest | Mapping[str, Any]]],
    *,
    max_lines: int = MAX_LINES_PER_FILE,
) -> list[BatchInputFile]:
    """Batch files for ``(custom_id, request)`` pairs: one model per file, `max_lines` at most.

    Models keep the order they first appear in; so do the requests within a model.

    Raises:
        BatchInputError: A request that cannot be batched (see `input_line`), or a custom_id
            given twice (results are mapped back by it).
        ConfigurationError: `max_lines` outside 1 to `MAX_LINES_PER_FILE`.
    """
    if not 1 <= max_lines <= MAX_LINES_PER_FILE:
        raise ConfigurationError(f"max_lines must be 1 to {MAX_LINES_PER_FILE}, got {max_lines}")
    by_model: dict[str, list[tuple[str, bytes]]] = {}
    seen: set[str] = set()
    for custom_id, request in requests:
        line = input_line(custom_id, request)
        if custom_id in seen:
            raise BatchInputError(custom_id, "this custom_id is used twice")
        seen.add(custom_id)
        encoded = json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode()
        by_model.setdefault(line["body"]["model"], []).append((custom_id, encoded))
    files = []
    for model, lines in by_model.items():
        for start in range(0, len(lines), max_lines):
            part = lines[start : start + max_lines]
            content = b"".join(encoded + b"\n" for _, encoded in part)
            files.append(BatchInputFile(model, tuple(cid for cid, _ in part), content))
    return files


# --- reading the result files ---------------------------------------------------------------


@dataclass(frozen=True)
class BatchRequestFailure:
    """Why one request of a batch failed.

    Attributes:
        status_code: The HTTP status its answer had, if it had one.
        code: The error code (SiliconFlow's number, or a name such as ``"batch_expired"``).
        message: What the server said.
    """

    status_code: int | None
    code: int | str | None
    message: str


@dataclass(frozen=True)
class BatchResult:
    """The outcome of one request: its completion, or its failure."""

    custom_id: str
    completion: ChatCompletion | None = None
    failure: BatchRequestFailure | None = None

    @property
    def ok(self) -> bool:
        """Whether the request was answered."""
        return self.completion is not None


@dataclass(frozen=True)
class MalformedLine:
    """A result line that could not be read.

    Attributes:
        source: ``"output"`` or ``"error"``: which file it came from.
        line_number: Its 1-based line number in that file.
        reason: What is wrong with it.
    """

    source: str
    line_number: int
    reason: str


@dataclass(frozen=True)
class BatchResults:
    """Every result line read, by ``custom_id``, and the lines that could not be read."""

    results: Mapping[str, BatchResult]
    malformed: tuple[MalformedLine, ...] = ()

    def missing(self, custom_ids: Iterable[str]) -> list[str]:
        """The ids of `custom_ids` that no line answered, in the given order."""
        return [cid for cid in custom_ids if cid not in self.results]


def parse_results(output: bytes | str = b"", errors: bytes | str = b"") -> BatchResults:
    """Map the lines of an output file and an error file to results by ``custom_id``.

    Blank lines are skipped; a line that is not a result is reported with its number. When an
    id appears more than once, an answer wins over a failure, else the first line wins.
    """
    results: dict[str, BatchResult] = {}
    malformed: list[MalformedLine] = []
    for source, text in (("output", output), ("error", errors)):
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            read = _result_line(line)
            if isinstance(read, str):
                malformed.append(MalformedLine(source, number, read))
                continue
            known = results.get(read.custom_id)
            if known is None or (read.ok and not known.ok):
                results[read.custom_id] = read
    return BatchResults(results, tuple(malformed))


def _result_line(line: str) -> BatchResult | str:
    """One result line read, or why it cannot be."""
    try:
        data = json.loads(line)
    except (ValueError, RecursionError) as exc:
        return f"not JSON ({type(exc).__name__})"
    if not isinstance(data, dict):
        return "not a JSON object"
    custom_id = data.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        return "no custom_id"
    error, response = data.get("error"), data.get("response")
    if error:
        status = _int_or_none(response.get("status_code")) if isinstance(response, dict) else None
        code, message = parse_error_body({"error": error} if isinstance(error, dict) else error)
        return BatchResult(custom_id, failure=BatchRequestFailure(status, code, message))
    if not isinstance(response, dict):
        return "neither a response nor an error"
    status = _int_or_none(response.get("status_code"))
    body = parse_json_body(response.get("body"))  # a body sent as JSON text is read too
    if status is not None and not 200 <= status < 300:
        code, message = parse_error_body(body)
        return BatchResult(custom_id, failure=BatchRequestFailure(status, code, message))
    try:
        completion = ChatCompletion.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "top level"
        message = f"the response is not a chat completion: {first['msg']} at {where}"
        return BatchResult(custom_id, failure=BatchRequestFailure(status, None, message))
    return BatchResult(custom_id, completion=completion)


# --- small readers --------------------------------------------------------------------------


def _object(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _invalid(f"The {what} answer is not a JSON object", value)
    return value


def _text_id(data: dict[str, Any], what: str) -> str:
    value = data.get("id")
    if not isinstance(value, str) or not value:
        raise _invalid(f"The {what} has no id", data)
    return value


def _invalid(message: str, value: object) -> APIResponseValidationError:
    text = json.dumps(value, ensure_ascii=False, default=str)[:2000]
    return APIResponseValidationError(message, body=text)


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _int_or_none(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _counts(value: object) -> RequestCounts | None:
    if not isinstance(value, dict):
        return None
    return RequestCounts(
        total=_int_or_none(value.get("total")) or 0,
        completed=_int_or_none(value.get("completed")) or 0,
        failed=_int_or_none(value.get("failed")) or 0,
    )


# --- the async shell ------------------------------------------------------------------------

DEFAULT_BATCH_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
"""Per-phase timeouts of one batch API request (these answer at once; no model runs)."""

DEFAULT_MAX_FILE_BYTES = 2 * 1024 * 1024 * 1024
"""2 GiB: the most a downloaded result file may hold (input files are capped at 1 GB)."""

Sleep = Callable[[float], Awaitable[None]]


class AsyncBatchAPI:
    """SiliconFlow's files and batches endpoints, awaited.

    Reads on the same base URL and key as `AsyncSiliconFlow` (``.../v1``). Reads, uploads and
    cancels are retried by `retry`; creating a batch is tried once, since a batch created twice
    is paid twice (find it again with `find_batches` instead).

    Args:
        api_key: The key; defaults to ``$SILICONFLOW_API_KEY``. Never logged or shown.
        base_url: The API base; defaults to ``$SILICONFLOW_BASE_URL``, then the ``.cn`` site.
        timeout: Per-phase timeouts of each request.
        total_timeout: Seconds one call may take, retries included.
        retry: The retry policy; ``None`` disables retries.
        http_client: Your own `httpx.AsyncClient` (you close it).
        transport: An `httpx.AsyncBaseTransport` for the client made here (not with
            ``http_client``).
        sleep: How to wait between retries and polls (tests pass a fake).
        max_response_bytes: The most a JSON answer may hold.
        max_file_bytes: The most a downloaded file may hold.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: httpx.Timeout | float = DEFAULT_BATCH_TIMEOUT,
        total_timeout: float = 600.0,
        retry: RetryPolicy | None = None,
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
        max_response_bytes: int | None = DEFAULT_MAX_RESPONSE_BYTES,
        max_file_bytes: int | None = DEFAULT_MAX_FILE_BYTES,
    ) -> None:
        if http_client is not None and transport is not None:
            raise ConfigurationError("pass http_client or transport, not both")
        if retry is None:
            retry = RetryPolicy.disabled()
        self._core = ClientCore(
            api_key=api_key, base_url=base_url, retry=retry, default_headers=None
        )
        self._timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self._total = total_timeout
        self._owned = http_client is None
        self._http = http_client or httpx.AsyncClient(transport=transport, timeout=self._timeout)
        self._sleep = sleep
        self._limit = check_max_bytes(max_response_bytes)
        self._file_limit = check_max_bytes(max_file_bytes)

    def __repr__(self) -> str:
        return f"AsyncBatchAPI(base_url={self._core.base_url!r})"

    @property
    def base_url(self) -> str:
        """The API base URL requests go to."""
        return self._core.base_url

    async def close(self) -> None:
        """Close the HTTP client, unless it came from ``http_client=``."""
        if self._owned:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncBatchAPI:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # --- the endpoints --------------------------------------------------------------------------

    async def upload(self, content: bytes, *, filename: str = "batch.jsonl") -> BatchFile:
        """Upload a batch input file (``POST /files``, multipart, ``purpose=batch``)."""
        files = {"file": (filename, content, "application/jsonl")}
        data = await self._json("POST", "/files", files=files, form={"purpose": "batch"})
        return BatchFile.from_payload(data)

    async def create(
        self,
        input_file_id: str,
        *,
        completion_window: str = "24h",
        metadata: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Batch:
        """Create a batch over an uploaded file (``POST /batches``); tried once, never retried.

        Args:
            input_file_id: The uploaded file.
            completion_window: ``"24h"`` to ``"336h"`` (see `completion_window`).
            metadata: Up to 16 string pairs; `BatchInputFile.metadata` finds the batch again.
            extra: More body fields, e.g. SiliconFlow's ``{"replace": {"model": ...}}``.
        """
        body: dict[str, Any] = {
            "input_file_id": input_file_id,
            "endpoint": BATCH_ENDPOINT,
            "completion_window": _as_window(completion_window),
        }
        if metadata:
            body["metadata"] = {str(k): str(v) for k, v in metadata.items()}
        body.update(extra or {})
        return Batch.from_payload(await self._json("POST", "/batches", body=body, retry=False))

    async def get(self, batch_id: str) -> Batch:
        """One batch as it is now (``GET /batches/{id}``)."""
        return Batch.from_payload(await self._json("GET", f"/batches/{_segment(batch_id)}"))

    async def cancel(self, batch_id: str) -> Batch:
        """Ask for a batch to stop (``POST /batches/{id}/cancel``); it passes ``cancelling``."""
        path = f"/batches/{_segment(batch_id)}/cancel"
        return Batch.from_payload(await self._json("POST", path))

    async def list_batches(
        self, *, limit: int = 100, after: str | None = None
    ) -> tuple[list[Batch], str | None]:
        """One page of batches (``GET /batches``): the batches and the cursor of the next page
        (``None`` on the last)."""
        params: dict[str, str | int] = {"limit": limit}
        if after is not None:
            params["after"] = after
        page = unwrap(await self._json("GET", "/batches", params=params))
        items = page.get("data") if isinstance(page, dict) else page
        if not isinstance(items, list):
            raise _invalid("The batch list has no data", page)
        batches = [Batch.from_payload(item) for item in items]
        more = isinstance(page, dict) and page.get("has_more") is True and bool(batches)
        return batches, (batches[-1].id if more else None)

    async def find_batches(
        self, metadata: Mapping[str, str], *, max_pages: int = 50
    ) -> list[Batch]:
        """The batches whose metadata holds every pair of `metadata`, in the server's order.

        Reads at most `max_pages` pages: the resume case looks for recent jobs.
        """
        wanted = {str(k): str(v) for k, v in metadata.items()}
        found: list[Batch] = []
        after: str | None = None
        for _ in range(max_pages):
            batches, after = await self.list_batches(after=after)
            found += [b for b in batches if all(b.metadata.get(k) == v for k, v in wanted.items())]
            if after is None:
                break
        return found

    async def content(self, file_id: str) -> bytes:
        """A file's bytes (``GET /files/{id}/content``); an id that is a URL is fetched as is,
        without the key."""
        if file_id.startswith(("https://", "http://")):
            return await self._fetch("GET", file_id, auth=False, limit=self._file_limit)
        path = f"/files/{_segment(file_id)}/content"
        return await self._fetch("GET", self._core.url(path), limit=self._file_limit)

    # --- the flow -------------------------------------------------------------------------------

    async def submit(
        self,
        file: BatchInputFile,
        *,
        job: str,
        completion_window: str = "24h",
        extra: Mapping[str, Any] | None = None,
    ) -> Batch:
        """Upload `file` and create its batch, tagged with `job` and the file's digest."""
        uploaded = await self.upload(file.content, filename=f"{job}-{file.digest}.jsonl")
        return await self.create(
            uploaded.id,
            completion_window=completion_window,
            metadata=file.metadata(job),
            extra=extra,
        )

    async def find_or_submit(
        self,
        file: BatchInputFile,
        *,
        job: str,
        completion_window: str = "24h",
        extra: Mapping[str, Any] | None = None,
    ) -> tuple[Batch, bool]:
        """The batch already submitted for `file` under `job`, else a new one.

        A batch that was cancelled (or is being cancelled) does not count: the work is
        submitted again. Returns the batch and whether it was submitted now.
        """
        for batch in await self.find_batches(file.metadata(job)):
            if batch.status not in ("cancelled", "cancelling"):
                return batch, False
        batch = await self.submit(file, job=job, completion_window=completion_window, extra=extra)
        return batch, True

    async def wait(
        self,
        batch_id: str,
        *,
        poll_interval: float = 60.0,
        timeout: float | None = None,
        on_poll: Callable[[Batch], None] | None = None,
    ) -> Batch:
        """Poll a batch until it is `Batch.finished`.

        Args:
            batch_id: The batch.
            poll_interval: Seconds between polls.
            timeout: Seconds to wait in all, counted as the intervals slept (``None``: until
                it finishes; SiliconFlow ends every batch by its completion window).
            on_poll: Called with each state read (progress reports).

        Raises:
            APITimeoutError: `timeout` passed first.
        """
        # Time is counted as the intervals waited (a poll itself is quick), so a fake sleep in
        # tests keeps the arithmetic exact.
        limit = math.inf if timeout is None else timeout
        waited = 0.0
        while True:
            batch = await self.get(batch_id)
            if on_poll is not None:
                on_poll(batch)
            if batch.finished:
                return batch
            if waited + poll_interval > limit:
                raise APITimeoutError(f"batch {batch_id} is still {batch.status} after {waited} s")
            await self._sleep(poll_interval)
            waited += poll_interval

    async def results(self, batch: Batch) -> BatchResults:
        """Download a batch's output and error files and map their lines by ``custom_id``."""
        output = await self.content(batch.output_file_id) if batch.output_file_id else b""
        errors = await self.content(batch.error_file_id) if batch.error_file_id else b""
        return parse_results(output, errors)

    # --- moving bytes ---------------------------------------------------------------------------

    async def _json(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
        form: Mapping[str, str] | None = None,
        params: Mapping[str, str | int] | None = None,
        retry: bool = True,
    ) -> object:
        """Send one call and read its JSON answer, the key redacted from it."""
        raw = await self._fetch(
            method,
            self._core.url(path),
            body=body,
            files=files,
            form=form,
            params=params,
            retry=retry,
            limit=self._limit,
        )
        parsed = parse_json_body(self._core.redact(raw.decode("utf-8", errors="replace")))
        if not isinstance(parsed, (dict, list)):
            error = APIResponseValidationError(
                f"The answer of {method} {path} is not JSON",
                body=redacted_excerpt(raw, self._core.redact),
            )
            raise error
        return parsed

    async def _fetch(
        self,
        method: str,
        url: str,
        *,
        body: Mapping[str, Any] | None = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
        form: Mapping[str, str] | None = None,
        params: Mapping[str, str | int] | None = None,
        retry: bool = True,
        auth: bool = True,
        limit: int | None,
    ) -> bytes:
        """One call's body, with retries; an error status raises its typed error."""
        if auth:
            headers = self._core.request_headers(json_body=body is not None)
        else:
            headers = {"Accept": "*/*", **self._core.headers}
        content = json.dumps(body, ensure_ascii=False).encode() if body is not None else None
        request = self._http.build_request(
            method, url, headers=headers, content=content, files=files, data=form, params=params
        )
        attempts = self._core.attempts(deadline=time.monotonic() + self._total)
        while True:
            attempts.begin()
            outcome = await self._attempt(request, limit)
            if not isinstance(outcome, Failure):
                return outcome
            if not retry:
                raise outcome.error
            await self._sleep(attempts.delay_after(outcome.error, retry_after=outcome.retry_after))

    async def _attempt(self, request: httpx.Request, limit: int | None) -> bytes | Failure:
        """One try, bounded by the call's total timeout."""
        what = f"{request.method} {self._core.redact(str(request.url))}"
        answer: bytes | Failure | None = None
        async with within(self._total):
            try:
                response = await self._http.send(request, stream=True)
                received = await areceive(response, self._core, limit, stream=False)
                answer = received if isinstance(received, Failure) else received[2]
            except httpx.TransportError as exc:
                answer = Failure(self._transport_error(exc, what))
        if answer is None:
            return Failure(APITimeoutError(f"{what} took longer than {self._total} s"))
        return answer

    def _transport_error(self, exc: httpx.TransportError, what: str) -> APIError:
        kind = type(exc).__name__
        detail = self._core.redact(str(exc)) or kind
        error: APIError
        if is_timeout(exc):
            error = APITimeoutError(f"{what} timed out ({kind}): {detail}")
        else:
            error = APIConnectionError(f"Connection error on {what} ({kind}): {detail}")
        # Not chained: httpx's error holds the request, and the request its Authorization.
        error.__cause__ = None
        error.__suppress_context__ = True
        return error


def _segment(identifier: str) -> str:
    """An id as one URL path segment (an id with ``/`` or ``?`` cannot reach another path)."""
    from urllib.parse import quote

    if not isinstance(identifier, str) or not identifier:
        raise ConfigurationError(f"an id must be a non-empty string, got {identifier!r}")
    return quote(identifier, safe="")
