"""An emulation of SiliconFlow's batch API on 127.0.0.1, beside the chat completions.

`BatchServer` is a `LoopbackServer` (chat completions and ``/v1/models`` as before) that also
serves ``POST /v1/files``, ``GET /v1/files/{id}/content``, ``POST /v1/batches``,
``GET /v1/batches``, ``GET /v1/batches/{id}`` and ``POST /v1/batches/{id}/cancel``. Batches
move on a controlled clock: one status step per poll (or per `BatchServer.advance` call), and
expiry when `BatchServer.advance_clock` passes ``expires_at``. Each line is answered by a
responder function returning a `Reply`, so answers and per-line errors are scripted.

No captures of the batch API exist; the emulation is built from SiliconFlow's published docs
(the batch guide and the API reference's examples).

From the docs:

- the endpoints, multipart upload with ``purpose=batch``, and the fields of file and batch objects;
- the upload answer wrapped as ``{"code": 20000, "message": "Ok", "status": true, "data": {...}}``
  with ``createdAt``; create, get and list answered plain, in OpenAI's format (``wrap="docs"``);
- the line rules: ``custom_id`` required and unique, ``body.messages`` of system/user/assistant
  ending with a user message, at most 5,000 lines, one model per file;
- ``endpoint`` ``/v1/chat/completions``; ``completion_window`` 24 h to 336 h; ``metadata`` up to
  16 pairs, keys up to 64 characters, values up to 512; ``replace: {"model"}`` on create;
- the statuses ``in_queue``, ``in_progress``, ``finalizing``, ``completed``, ``expired``,
  ``cancelling``, ``cancelled``; ``request_counts`` ``null`` while queued.

Assumed (OpenAI's batch API where SiliconFlow's docs are silent):

- the lines are checked at upload, a bad file answered 400 ``{"code": 20015, ...}`` naming the line;
- result lines ``{"id", "custom_id", "response": {"status_code", "request_id", "body"},
  "error"}``; answers with an error status go to the error file; lines of an expired or cancelled
  batch go there too, with ``error: {"code": "batch_expired" | "batch_cancelled"}``;
- cancel is refused (400) once a batch is finished or cancelling; ``cancelling`` becomes
  ``cancelled`` at the next step; unknown ids answer 404;
- the list is newest first, with OpenAI's ``limit``/``after`` cursor and ``has_more``.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs

from sfagent.offline.replies import Completion, RecordedRequest, Reply
from sfagent.testing.server import LoopbackServer, Responder

__all__ = ["BatchServer", "LineResponder", "Wrap"]

LineResponder = Callable[[str, dict[str, Any]], Reply]
"""Answers one batch line: ``(custom_id, body) -> Reply`` (an error status fails the line)."""

Wrap = Literal["docs", "all", "none"]
"""Which answers come in SiliconFlow's envelope: the upload only, as the docs show (``"docs"``),
every JSON answer (``"all"``), or none (``"none"``, plain OpenAI format)."""

_ROLES = frozenset({"system", "user", "assistant"})
_MAX_LINES = 5000
_WINDOW = re.compile(r"(\d+)h")
_STEPS = {"in_queue": "in_progress", "in_progress": "finalizing", "finalizing": "completed"}
_FINISHED = frozenset({"completed", "expired", "cancelled"})


class _Refused(Exception):
    """A request the emulation answers with an error status."""

    def __init__(self, status: int, message: str, code: int | None = 20015) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"code": code, "message": message, "data": None}
        if code is None:
            del self.body["code"]


@dataclass
class _File:
    id: str
    filename: str
    purpose: str
    content: bytes
    created_at: int


@dataclass
class _Batch:
    id: str
    input_file_id: str
    window: str
    created_at: int
    expires_at: int
    metadata: dict[str, str]
    model: str | None
    status: str = "in_queue"
    times: dict[str, int] = field(default_factory=dict)
    polls: int = 0
    output_file_id: str | None = None
    error_file_id: str | None = None
    counts: dict[str, int] | None = None
    answers: list[tuple[str, bytes]] = field(default_factory=list)  # (file kind, line)


def _default_responder(custom_id: str, body: dict[str, Any]) -> Reply:
    last = body.get("messages", [{}])[-1]
    return Reply(text=f"Answer to: {last.get('content', '')}")


class BatchServer(LoopbackServer):
    """A loopback server that also speaks SiliconFlow's batch API (see the module docstring).

    Args:
        replies: The chat-completions script, as for `LoopbackServer`.
        responder: Answers each batch line; by default ``"Answer to: <last message>"``.
        wrap: Which answers come wrapped (see `Wrap`).
        polls_per_step: Move a batch one status step every this many ``GET``s of it;
            ``None``: only `advance` moves it.
        now: The emulated clock's start, in Unix seconds.
        **options: `LoopbackServer`'s other options (``api_key=``, ``latency=``...).

    Attributes:
        uploads: The ids of the files uploaded, in order.
        created: The body of every accepted ``POST /v1/batches``, in order (one per batch paid).
    """

    def __init__(
        self,
        replies: Iterable[Reply] | Responder = (),
        *,
        responder: LineResponder = _default_responder,
        wrap: Wrap = "docs",
        polls_per_step: int | None = 1,
        now: int = 1_741_685_400,
        **options: Any,
    ) -> None:
        super().__init__(replies, **options)
        self._line_responder = responder
        self._wrap = wrap
        self._polls_per_step = polls_per_step
        self.now = now
        self._files: dict[str, _File] = {}
        self._batches: dict[str, _Batch] = {}
        self._failures: deque[Reply] = deque()
        self._lock = threading.Lock()
        self.uploads: list[str] = []
        self.created: list[dict[str, Any]] = []

    def __repr__(self) -> str:
        return f"BatchServer(base_url={self.base_url!r}, batches={len(self._batches)})"

    # --- control, from the test's thread ----------------------------------------------------------

    def fail_next(self, *replies: Reply) -> None:
        """Answer the next batch-API requests with these error replies (``Reply.error``)."""
        with self._lock:
            self._failures.extend(replies)

    def advance(self, batch_id: str, steps: int = 1) -> str:
        """Move a batch `steps` status steps (finished batches stay); returns its status."""
        with self._lock:
            batch = self._batches[batch_id]
            for _ in range(steps):
                self._step(batch)
            return batch.status

    def run(self, batch_id: str) -> str:
        """Move a batch until it is finished; returns its final status."""
        return self.advance(batch_id, steps=4)

    def advance_clock(self, seconds: int) -> None:
        """Move the emulated clock; unfinished batches past ``expires_at`` expire."""
        with self._lock:
            self.now += seconds
            for batch in self._batches.values():
                self._check_expiry(batch)

    def batch(self, batch_id: str) -> dict[str, Any]:
        """The batch object as ``GET /v1/batches/{id}`` would show it (without a poll)."""
        with self._lock:
            return self._batch_object(self._batches[batch_id])

    def file_text(self, file_id: str) -> str:
        """A stored file's content, as text."""
        with self._lock:
            return self._files[file_id].content.decode()

    # --- routing ----------------------------------------------------------------------------------

    async def _route(self, request: RecordedRequest, writer: asyncio.StreamWriter) -> None:
        route = request.path.split("?", 1)[0].rstrip("/")
        parts = route.split("/")[2:]  # after "/v1"
        if not parts or parts[0] not in ("files", "batches"):
            await super()._route(request, writer)
            return
        with self._lock:
            failure = self._failures.popleft() if self._failures else None
            if failure is None:
                try:
                    status, kind, body = self._dispatch(request, parts)
                except _Refused as refused:
                    status, kind, body = refused.status, "error", refused.body
        if failure is not None:
            payload, content_type = failure.error_payload()
            await _respond(writer, failure.status, payload, content_type)
        elif kind == "content":
            await _respond(writer, status, body, "application/octet-stream")
        else:
            await _respond(writer, status, _dumps(self._wrapped(kind, body)))

    def _dispatch(self, request: RecordedRequest, parts: list[str]) -> tuple[int, str, Any]:
        method = request.method
        if parts == ["files"] and method == "POST":
            return 200, "upload", self._upload(request)
        if len(parts) == 3 and parts[0] == "files" and parts[2] == "content" and method == "GET":
            return 200, "content", self._stored(parts[1]).content
        if parts == ["batches"] and method == "POST":
            return 200, "batch", self._create(request.json)
        if parts == ["batches"] and method == "GET":
            return 200, "list", self._list(request.path)
        if len(parts) == 2 and parts[0] == "batches" and method == "GET":
            return 200, "batch", self._poll(self._find(parts[1]))
        if len(parts) == 3 and parts[0] == "batches" and parts[2] == "cancel" and method == "POST":
            return 200, "batch", self._cancel(self._find(parts[1]))
        raise _Refused(404, "404 page not found", code=None)

    def _wrapped(self, kind: str, body: Any) -> Any:
        if kind == "error" or self._wrap == "none":
            return body
        if self._wrap == "all" or kind == "upload":
            return {"code": 20000, "message": "Ok", "status": True, "data": body}
        return body

    # --- files ------------------------------------------------------------------------------------

    def _upload(self, request: RecordedRequest) -> dict[str, Any]:
        fields = _multipart(request)
        if fields.get("purpose", ("", ""))[1] != "batch":
            raise _Refused(400, "purpose must be batch")
        if "file" not in fields:
            raise _Refused(400, "no file in the form")
        filename, text = fields["file"]
        _check_lines(text)
        stored = _File(
            _new_id("file-"), filename or "upload.jsonl", "batch", text.encode(), self.now
        )
        self._files[stored.id] = stored
        self.uploads.append(stored.id)
        return {
            "id": stored.id,
            "object": "file",
            "bytes": len(stored.content),
            "createdAt": stored.created_at,
            "filename": stored.filename,
            "purpose": stored.purpose,
        }

    def _stored(self, file_id: str) -> _File:
        stored = self._files.get(file_id)
        if stored is None:
            raise _Refused(404, f"file {file_id} not found", code=None)
        return stored

    # --- batches ----------------------------------------------------------------------------------

    def _create(self, body: dict[str, Any]) -> dict[str, Any]:
        stored = self._files.get(str(body.get("input_file_id")))
        if stored is None:
            raise _Refused(400, f"input_file_id {body.get('input_file_id')!r} does not exist")
        if body.get("endpoint") != "/v1/chat/completions":
            raise _Refused(400, "endpoint must be /v1/chat/completions")
        hours = _window_hours(body.get("completion_window"))
        metadata = _check_metadata(body.get("metadata"))
        replace = body.get("replace")
        model = replace.get("model") if isinstance(replace, dict) else None
        batch = _Batch(
            id=_new_id("batch_"),
            input_file_id=stored.id,
            window=f"{hours}h",
            created_at=self.now,
            expires_at=self.now + hours * 3600,
            metadata=metadata,
            model=model if isinstance(model, str) else None,
        )
        self._batches[batch.id] = batch
        self.created.append(dict(body))
        return self._batch_object(batch)

    def _find(self, batch_id: str) -> _Batch:
        batch = self._batches.get(batch_id)
        if batch is None:
            raise _Refused(404, f"batch {batch_id} not found", code=None)
        return batch

    def _poll(self, batch: _Batch) -> dict[str, Any]:
        batch.polls += 1
        every = self._polls_per_step
        if every is not None and batch.polls % every == 0:
            self._step(batch)
        return self._batch_object(batch)

    def _cancel(self, batch: _Batch) -> dict[str, Any]:
        if batch.status in _FINISHED or batch.status == "cancelling":
            raise _Refused(400, f"cannot cancel a batch that is {batch.status}")
        batch.status = "cancelling"
        batch.times["cancelling_at"] = self.now
        return self._batch_object(batch)

    def _list(self, path: str) -> dict[str, Any]:
        query = parse_qs(path.partition("?")[2])
        limit = int(query.get("limit", ["20"])[0])
        after = query.get("after", [None])[0]
        ordered = sorted(self._batches.values(), key=lambda b: b.created_at, reverse=True)
        ids = [b.id for b in ordered]
        start = ids.index(after) + 1 if after in ids else 0
        page = ordered[start : start + limit]
        return {
            "object": "list",
            "data": [self._batch_object(b) for b in page],
            "first_id": page[0].id if page else None,
            "last_id": page[-1].id if page else None,
            "has_more": start + limit < len(ordered),
        }

    # --- the batch's life -------------------------------------------------------------------------

    def _step(self, batch: _Batch) -> None:
        self._check_expiry(batch)
        if batch.status == "cancelling":
            self._finish(batch, "cancelled", "batch_cancelled")
            return
        following = _STEPS.get(batch.status)
        if following is None:
            return
        batch.status = following
        batch.times[f"{following}_at"] = self.now
        if following == "in_progress":
            batch.counts = {"total": len(self._lines(batch)), "completed": 0, "failed": 0}
        elif following == "finalizing":
            self._answer_all(batch)
        else:
            self._write_files(batch)

    def _check_expiry(self, batch: _Batch) -> None:
        if batch.status not in _FINISHED and self.now >= batch.expires_at:
            self._finish(batch, "expired", "batch_expired")

    def _finish(self, batch: _Batch, status: str, code: str) -> None:
        """End a batch early: every line not answered yet goes to the error file with `code`."""
        answered = {json.loads(line)["custom_id"] for _, line in batch.answers}
        for custom_id, _body in self._lines(batch):
            if custom_id not in answered:
                error = {"code": code, "message": f"the batch was {status} before this request ran"}
                line: dict[str, Any] = {"id": _new_id("batch_req_"), "custom_id": custom_id}
                line |= {"response": None, "error": error}
                batch.answers.append(("error", _dumps(line)))
        batch.status = status
        batch.times[f"{status}_at"] = self.now
        self._write_files(batch)

    def _lines(self, batch: _Batch) -> list[tuple[str, dict[str, Any]]]:
        text = self._files[batch.input_file_id].content.decode()
        lines = [json.loads(line) for line in text.splitlines() if line.strip()]
        return [(str(line["custom_id"]), dict(line["body"])) for line in lines]

    def _answer_all(self, batch: _Batch) -> None:
        for custom_id, body in self._lines(batch):
            if batch.model is not None:
                body["model"] = batch.model
            reply = self._line_responder(custom_id, body)
            request = RecordedRequest("POST", "/v1/chat/completions", {}, body)
            response: dict[str, Any] = {"request_id": uuid.uuid4().hex}
            if reply.status == 200:
                response |= {"status_code": 200, "body": Completion(reply, request).response()}
            else:
                payload, _ = reply.error_payload()
                response |= {"status_code": reply.status, "body": json.loads(payload)}
            line: dict[str, Any] = {"id": _new_id("batch_req_"), "custom_id": custom_id}
            line |= {"response": response, "error": None}
            kind = "output" if reply.status == 200 else "error"
            batch.answers.append((kind, _dumps(line)))

    def _write_files(self, batch: _Batch) -> None:
        for kind in ("output", "error"):
            lines = [line for k, line in batch.answers if k == kind]
            if lines:
                stored = _File(
                    _new_id("file-"), f"{batch.id}_{kind}.jsonl", f"batch_{kind}",
                    b"".join(line + b"\n" for line in lines), self.now,
                )  # fmt: skip
                self._files[stored.id] = stored
                setattr(batch, f"{kind}_file_id", stored.id)
        failed = sum(1 for k, _ in batch.answers if k == "error")
        total = len(self._lines(batch))
        batch.counts = {"total": total, "completed": total - failed, "failed": failed}

    def _batch_object(self, batch: _Batch) -> dict[str, Any]:
        stamps = ("in_progress", "finalizing", "completed", "failed", "expired", "cancelling")
        obj: dict[str, Any] = {
            "id": batch.id,
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "errors": None,
            "input_file_id": batch.input_file_id,
            "completion_window": batch.window,
            "status": batch.status,
            "output_file_id": batch.output_file_id,
            "error_file_id": batch.error_file_id,
            "created_at": batch.created_at,
            "expires_at": batch.expires_at,
        }
        obj |= {f"{s}_at": batch.times.get(f"{s}_at") for s in (*stamps, "cancelled")}
        obj["request_counts"] = dict(batch.counts) if batch.counts is not None else None
        obj["metadata"] = dict(batch.metadata)
        return obj


# --- checks the docs state ------------------------------------------------------------------------


def _check_lines(text: str) -> None:
    """The batch guide's rules for an input file; the first broken one refuses it."""
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        raise _Refused(400, "the file has no lines")
    if len(lines) > _MAX_LINES:
        raise _Refused(400, f"the file has {len(lines)} lines; at most {_MAX_LINES} are allowed")
    seen: set[str] = set()
    models: set[str] = set()
    for number, line in lines:
        try:
            data = json.loads(line)
        except ValueError:
            raise _Refused(400, f"line {number} is not JSON") from None
        custom_id = data.get("custom_id") if isinstance(data, dict) else None
        if not isinstance(custom_id, str) or not custom_id:
            raise _Refused(400, f"line {number} has no custom_id")
        if custom_id in seen:
            raise _Refused(400, f"line {number}: custom_id {custom_id!r} is not unique")
        seen.add(custom_id)
        _check_body(number, data.get("body"))
        models.add(str(data["body"].get("model")))
    if len(models) > 1:
        raise _Refused(400, f"one model per file; this one asks for {sorted(models)}")


def _check_body(number: int, body: object) -> None:
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list) or not messages:
        raise _Refused(400, f"line {number}: body.messages is required")
    roles = [m.get("role") if isinstance(m, dict) else None for m in messages]
    if any(role not in _ROLES for role in roles):
        raise _Refused(400, f"line {number}: roles must be system, user or assistant")
    if roles[-1] != "user":
        raise _Refused(400, f"line {number}: messages must end with a user message")


def _window_hours(value: object) -> int:
    match = _WINDOW.fullmatch(value) if isinstance(value, str) else None
    if match is None or not 24 <= int(match.group(1)) <= 336:
        raise _Refused(400, f"completion_window must be 24h to 336h, got {value!r}")
    return int(match.group(1))


def _check_metadata(value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > 16:
        raise _Refused(400, "metadata must be an object of at most 16 pairs")
    for key, item in value.items():
        if not isinstance(item, str) or len(key) > 64 or len(item) > 512:
            raise _Refused(400, "metadata keys are at most 64 characters, values 512 (strings)")
    return dict(value)


# --- the wire -------------------------------------------------------------------------------------


def _multipart(request: RecordedRequest) -> dict[str, tuple[str, str]]:
    """The form's fields: name -> (filename, text). The body arrives as text (UTF-8 JSONL)."""
    content_type = request.headers.get("content-type", "")
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not content_type.startswith("multipart/form-data") or match is None:
        raise _Refused(400, "the upload must be multipart/form-data")
    body = request.body if isinstance(request.body, str) else ""
    fields: dict[str, tuple[str, str]] = {}
    for part in body.split("--" + match.group(1))[1:]:
        head, _, value = part.partition("\r\n\r\n")
        name = re.search(r'name="([^"]*)"', head)
        if name is None:
            continue  # the closing "--" after the last boundary
        filename = re.search(r'filename="([^"]*)"', head)
        fields[name.group(1)] = (filename.group(1) if filename else "", value.removesuffix("\r\n"))
    return fields


def _new_id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:20]


def _dumps(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


async def _respond(
    writer: asyncio.StreamWriter, status: int, body: bytes, content_type: str = "application/json"
) -> None:
    reasons = {200: "OK", 400: "Bad Request", 404: "Not Found"}
    head = (
        f"HTTP/1.1 {status} {reasons.get(status, 'Error')}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"x-siliconcloud-trace-id: {uuid.uuid4().hex}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    writer.write(head.encode("latin-1") + body)
    await writer.drain()
