"""A sans-IO server-sent-events decoder: bytes in, events out.

Follows the SSE parsing rules (https://html.spec.whatwg.org/multipage/server-sent-events.html):
lines end in CRLF, CR or LF (a CRLF split across two reads is one line end), ``:`` lines are
comments, ``data:`` takes at most one leading space, several ``data`` lines join with ``\\n``, a
blank line dispatches, ``event``/``id``/``retry`` are kept per spec. Two additions for the chat API:

- ``data: [DONE]`` ends the stream; anything after it is ignored.
- A line that starts with ``{`` is no SSE field at all: SiliconFlow sends errors that way after
  HTTP 200 (``{"code":60000,...}``). Such lines are collected until they form a JSON value and
  come out as an event with ``bare=True``.

Nothing grows without bound: given ``max_buffer_bytes``, an unfinished line, the data lines of
one event and a bare JSON value that never end raise `ResponseTooLargeError` at that size; a bare
value nested too deeply for the JSON parser raises `APIResponseValidationError`.

Data stays in bytes: lines are split on bytes (a newline byte never sits inside a UTF-8
sequence, so a character split across reads is whole again once its line is), and the JSON
parser reads bytes directly, so no text is decoded on the per-chunk path.
"""

from __future__ import annotations

import json

from sfagent.client._body import too_large
from sfagent.exceptions import APIResponseValidationError, ResponseTooLargeError

__all__ = ["SSEDecoder", "SSEEvent"]

_BOM = b"\xef\xbb\xbf"
_DONE = b"[DONE]"
_LINE_COST = 40
"""What a held line costs beyond its bytes (a bytes object and its list slot), counted against
``max_buffer_bytes`` so that many tiny lines cannot hold several times the cap."""


class SSEEvent:
    """One dispatched event.

    Attributes:
        data: The event's data (lines joined with ``\\n``), as bytes.
        event: The ``event:`` field, or ``None`` (the spec's default type, "message").
        id: The last event id seen so far, or ``None``.
        retry: The last valid ``retry:`` value in milliseconds, or ``None``.
        bare: True for a JSON object sent outside SSE framing (an error after HTTP 200).
    """

    __slots__ = ("bare", "data", "event", "id", "retry")

    def __init__(
        self,
        data: bytes,
        *,
        event: str | None = None,
        id: str | None = None,
        retry: int | None = None,
        bare: bool = False,
    ) -> None:
        self.data = data
        self.event = event
        self.id = id
        self.retry = retry
        self.bare = bare

    @property
    def text(self) -> str:
        """The data decoded as UTF-8 (invalid bytes replaced, as the spec requires)."""
        return self.data.decode("utf-8", errors="replace")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SSEEvent):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self.__slots__)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"SSEEvent(data={self.data!r}, event={self.event!r}, id={self.id!r}, "
            f"retry={self.retry!r}, bare={self.bare!r})"
        )


class SSEDecoder:
    """Incremental SSE decoder: `decode` whatever the transport delivers, `close` at the end.

    Args:
        max_buffer_bytes: The most bytes held for one unfinished line, one event's data or one
            bare JSON value; ``None`` for no limit.

    Attributes:
        done: True once ``data: [DONE]`` has arrived; later input is ignored.
        last_event_id: The spec's last event id buffer.
        retry: The last valid ``retry:`` value (milliseconds), or ``None``.
    """

    __slots__ = (
        "_bare",
        "_bare_size",
        "_data",
        "_data_size",
        "_event",
        "_limit",
        "_pending",
        "_pending_size",
        "_skip_lf",
        "_started",
        "done",
        "last_event_id",
        "retry",
    )

    def __init__(self, *, max_buffer_bytes: int | None = None) -> None:
        self._limit = max_buffer_bytes if max_buffer_bytes is not None else -1
        self._pending: list[bytes] = []  # bytes of the current, not yet finished line
        self._pending_size = 0
        self._data_size = 0
        self._bare_size = 0
        self._skip_lf = False  # the last read ended in CR: a leading LF belongs to it
        self._started = False
        self._data: list[bytes] = []
        self._event: str | None = None
        self._bare: list[bytes] = []
        self.done = False
        self.last_event_id: str | None = None
        self.retry: int | None = None

    def decode(self, chunk: bytes) -> list[SSEEvent]:
        """Decode the next piece of the body; return the events it completed."""
        if self.done or not chunk:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
                if not chunk:
                    return []
        if not self._started:
            chunk = self._strip_bom(chunk)
            if not chunk:
                return []
        if b"\n" not in chunk and b"\r" not in chunk:
            self._pending.append(chunk)
            self._pending_size += len(chunk)
            if self._pending_size > self._limit >= 0:
                raise self._too_large("An unfinished line of the stream")
            return []
        if self._pending:
            self._pending.append(chunk)
            chunk = b"".join(self._pending)
            self._pending = []
        self._pending_size = 0
        lines = chunk.splitlines()
        last = chunk[-1]
        if last == 0x0D:  # CR
            self._skip_lf = True
        elif last != 0x0A:  # LF
            self._pending.append(lines.pop())
            self._pending_size = len(self._pending[0])
        return self._lines(lines)

    def close(self) -> list[SSEEvent]:
        """Signal the end of the body; return what it completes.

        An unfinished line counts as a line. Per spec, an event without its closing blank
        line is dropped, except ``[DONE]`` and a bare JSON error, which are too useful to lose.
        """
        if self.done:
            return []
        lines = [b"".join(self._pending)] if self._pending else []
        self._pending = []
        self._pending_size = 0
        events = self._lines(lines)
        if self.done:
            return events
        if self._bare:
            events.append(self._take_bare())
        elif self._data and b"\n".join(self._data).strip() == _DONE:
            self.done = True
        self._data = []
        return events

    def _strip_bom(self, chunk: bytes) -> bytes:
        if self._pending:  # bytes held back while the BOM was undecided
            chunk = b"".join([*self._pending, chunk])
            self._pending = []
        if len(chunk) < len(_BOM) and _BOM.startswith(chunk):
            self._pending.append(chunk)
            return b""
        self._started = True
        return chunk[len(_BOM) :] if chunk.startswith(_BOM) else chunk

    def _lines(self, lines: list[bytes]) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        data = self._data
        for line in lines:
            if line.startswith(b"data:"):
                data.append(line[6:] if line[5:6] == b" " else line[5:])
                self._data_size += len(line) + _LINE_COST
                if self._data_size > self._limit >= 0:
                    raise self._too_large("One event of the stream")
            elif not line:
                if self._bare:
                    events.append(self._take_bare())
                if data:
                    event = self._dispatch()
                    data = self._data
                    if event is not None:
                        events.append(event)
                    if self.done:
                        return events
                else:
                    self._event = None
            elif line[0] == 0x3A:  # ":" comment, e.g. keep-alive
                continue
            elif self._bare or line.lstrip()[:1] == b"{":
                self._bare.append(line)
                self._bare_size += len(line) + _LINE_COST
                if self._bare_size > self._limit >= 0:
                    raise self._too_large("A JSON value sent outside SSE framing")
                if line.rstrip()[-1:] == b"}" and _is_json(self._bare):
                    events.append(self._take_bare())
            else:
                self._field(line)
        return events

    def _dispatch(self) -> SSEEvent | None:
        data = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
        self._data = []
        self._data_size = 0
        event, self._event = self._event, None
        if data.strip() == _DONE:
            self.done = True
            return None
        return SSEEvent(data, event=event, id=self.last_event_id, retry=self.retry)

    def _take_bare(self) -> SSEEvent:
        data = b"\n".join(self._bare)
        self._bare = []
        self._bare_size = 0
        return SSEEvent(data, id=self.last_event_id, retry=self.retry, bare=True)

    def _field(self, line: bytes) -> None:
        name, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if name == b"data":  # "data" with no colon: an empty data line
            self._data.append(value)
            self._data_size += len(line) + _LINE_COST
            if self._data_size > self._limit >= 0:
                raise self._too_large("One event of the stream")
        elif name == b"event":
            self._event = value.decode("utf-8", errors="replace")
        elif name == b"id" and b"\0" not in value:
            self.last_event_id = value.decode("utf-8", errors="replace")
        elif name == b"retry" and value.isdigit():
            self.retry = int(value)
        # Any other field name is ignored, as the spec says.

    def _too_large(self, what: str) -> ResponseTooLargeError:
        self._pending, self._data, self._bare = [], [], []
        return too_large(what, self._limit)


def _is_json(lines: list[bytes]) -> bool:
    """Whether the bare lines so far form a JSON value (called only when one ends in ``}``)."""
    text = b"\n".join(lines)
    try:
        json.loads(text)
    except ValueError:
        return False
    except RecursionError:  # complete or not, nested past what the parser reads
        # No excerpt: the decoder has no redactor, and a line from the server may echo the key.
        raise APIResponseValidationError(
            f"A JSON value in the stream is nested too deeply to read ({len(text)} bytes)"
        ) from None
    return True
