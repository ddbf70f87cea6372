"""Reading SiliconFlow's error bodies, whichever of their shapes arrives, and wherever.

SiliconFlow answers errors in three shapes: ``{"code", "message", "data"}`` (400, 503, and 429
without ``code``), a bare string (401, 403, 404, 504), and, behind OpenAI-compatible gateways,
OpenAI's ``{"error": {"message", "type", "code"}}``. The same objects also arrive after HTTP 200,
as a non-stream body or inside a stream: `is_error_reply` tells them from an answer, and
`stream_error_status` infers the status they stand for. Everything here is pure: bytes or parsed
JSON in, values out, so the HTTP clients and the stream layer share one reading.

A server may echo the API key in any of these. Given ``redact=`` (the clients pass
`sfagent._secret.Secret.redact`), every reader here applies it to the raw body before the body is
parsed, quoted or cut, so no cut can leave a piece of the key behind, and to the trace id.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from sfagent._text import MAX_EXCERPT_CHARS, excerpt, shorten
from sfagent.exceptions import APIResponseValidationError, APIStatusError, status_error_class

if TYPE_CHECKING:
    from pydantic import ValidationError

    from sfagent.messages import ChatCompletion, ChatCompletionChunk

_TEXT_CODE = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]{0,63}")
"""A named error code: ASCII, short, no spaces (anything else is not kept as a code)."""

__all__ = [
    "MAX_MESSAGE_CHARS",
    "Redact",
    "error_from_response",
    "error_from_stream_payload",
    "invalid_body",
    "is_error_reply",
    "parse_error_body",
    "parse_json_body",
    "redacted_body",
    "redacted_excerpt",
    "stream_error_status",
]

MAX_MESSAGE_CHARS = MAX_EXCERPT_CHARS
"""Longer messages (an HTML error page from a proxy, say) are cut to this many characters."""

Redact = Callable[[str], str]
"""Removes a secret from text a server sent (see `sfagent._secret.Secret.redact`)."""


def parse_json_body(body: bytes | str | object) -> object:
    """Decode a raw body as JSON when it is JSON, else return it as text.

    Args:
        body: Raw bytes or text from the wire, or an already parsed value (returned unchanged).

    Returns:
        The parsed JSON value; the stripped text when the body is not JSON; ``None`` when empty.
    """
    if isinstance(body, (bytes, bytearray)):
        body = bytes(body).decode("utf-8", errors="replace")
    if not isinstance(body, str):
        return body
    text = body.strip()
    if not text:
        return None
    try:
        parsed: object = json.loads(text)
    except (ValueError, RecursionError):  # not JSON, or nested past the parser's depth
        return text
    return parsed


def redacted_body(body: bytes | str | object, redact: Redact) -> object:
    """`parse_json_body` of `body`, cleaned by `redact` first: nothing read from it holds a secret.

    The raw text is redacted before it is parsed; when it has escapes (``\\u0073k-...`` can
    spell a key), every string of the parsed value is redacted too. An already parsed value is
    read as its JSON text.

    Args:
        body: Raw bytes or text from the wire, or an already parsed value.
        redact: Removes the secret from a text.
    """
    if isinstance(body, (bytes, bytearray)):
        text = bytes(body).decode("utf-8", errors="replace")
    elif isinstance(body, str) or body is None:
        text = body or ""
    else:
        try:
            text = json.dumps(body, ensure_ascii=False, default=str)
        except (TypeError, ValueError, RecursionError):
            text = "(a value that cannot be shown as JSON)"
    text = redact(text)
    parsed = parse_json_body(text)
    if "\\" not in text:  # every string in `parsed` is a piece of `text`, already clean
        return parsed
    if isinstance(parsed, str):
        return redact(parsed)
    if isinstance(parsed, (dict, list)):
        _redact_strings(parsed, redact)
    return parsed


def parse_error_body(body: bytes | str | object) -> tuple[int | str | None, str]:
    """Extract the error code (SiliconFlow's number, or a named one) and the message.

    Args:
        body: Raw bytes or text, or an already parsed JSON value (dict, string, ``None``...).

    Returns:
        ``(code, message)``: the code when the body carries one (SiliconFlow's numbers as
        ``int``, named codes such as OpenAI's ``"context_length_exceeded"`` as ``str``; ``None``
        otherwise), and the message, ``""`` when the body says nothing usable.
    """
    parsed = parse_json_body(body)
    if parsed is None:
        return None, ""
    if isinstance(parsed, str):
        return None, shorten(parsed, MAX_MESSAGE_CHARS)
    if isinstance(parsed, dict):
        return _from_mapping(parsed)
    return None, _as_text(parsed)


def error_from_response(
    status_code: int,
    body: bytes | str | object,
    *,
    trace_id: str | None,
    redact: Redact | None = None,
) -> APIStatusError:
    """Build the typed error for an HTTP error status (or an error object inside a stream).

    Args:
        status_code: The HTTP status, or for a mid-stream error the status its code implies.
        body: The body as received (bytes or text) or already parsed.
        trace_id: The ``x-siliconcloud-trace-id`` response header, when present.
        redact: Applied to the body before it is read and to the trace id (see `redacted_body`).

    Returns:
        An instance of the `APIStatusError` subclass for the status; not raised.
    """
    parsed = _read(body, redact)
    return _status_error(status_code, parsed, _header(trace_id, redact))


def _status_error(status_code: int, parsed: object, trace_id: str | None) -> APIStatusError:
    code, message = parse_error_body(parsed)
    if not message:
        message = _reason_phrase(status_code)
    cls = status_error_class(status_code)
    return cls(message, status_code=status_code, code=code, trace_id=trace_id, body=parsed)


# --- error objects after HTTP 200 ------------------------------------------------------------


def is_error_reply(reply: ChatCompletion | ChatCompletionChunk) -> bool:
    """Whether an answer that came with HTTP 200 (a whole body or a stream chunk) is an error.

    One rule for both: an ``error`` object (OpenAI's shape; no answer carries one, and
    OpenRouter sends it beside an id and choices when a stream fails), or SiliconFlow's
    ``code`` and ``message`` with no choices, an id or not (a gateway may add one).
    """
    extra = reply.__pydantic_extra__
    if not extra:
        return False
    if isinstance(extra.get("error"), dict):
        return True
    return "code" in extra and "message" in extra and not reply.choices


_OPENAI_TYPES = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "rate_limit_error": 429,
    "rate_limit_exceeded": 429,
    "overloaded_error": 503,
}


def stream_error_status(payload: object) -> int:
    """Infer the HTTP status an error object found inside a stream stands for.

    A mid-stream error arrives after HTTP 200, so the status comes from the payload: a
    ``status``/``status_code`` field when present; SiliconFlow codes 20000-20999 are
    validation errors (400), 50505 is overload (503); OpenAI-style ``type``/``code`` strings
    map to their statuses; everything else (including SiliconFlow's 60000) is 500.
    """
    if not isinstance(payload, dict):
        return 500
    inner = payload.get("error")
    source: dict[str, Any] = inner if isinstance(inner, dict) else payload
    for key in ("status", "status_code"):
        status = source.get(key)
        if isinstance(status, int) and not isinstance(status, bool) and 400 <= status < 600:
            return status
    code = _as_code(source.get("code"))
    if isinstance(code, int):
        if 20000 <= code < 21000:
            return 400
        if code == 50505:
            return 503
        return code if 400 <= code < 600 else 500
    for key in ("type", "code"):
        status = _OPENAI_TYPES.get(str(source.get(key)))
        if status is not None:
            return status
    return 500


def error_from_stream_payload(
    payload: bytes | str | object,
    *,
    trace_id: str | None = None,
    redact: Redact | None = None,
) -> APIStatusError:
    """Turn an error object that came after HTTP 200 into the typed error (not raised).

    Args:
        payload: The raw bytes/text of the stream event or body, or the parsed JSON.
        trace_id: The ``x-siliconcloud-trace-id`` header of the (HTTP 200) response.
        redact: Applied to the payload before it is read and to the trace id.

    Returns:
        The `APIStatusError` subclass for the status `stream_error_status` infers.
    """
    parsed = _read(payload, redact)
    return _status_error(stream_error_status(parsed), parsed, _header(trace_id, redact))


def invalid_body(
    what: str, exc: ValidationError, body: bytes | str, *, redact: Redact | None = None
) -> APIResponseValidationError:
    """The error for a body that is not what it should be: the first problem, and the body's start.

    Raise it outside the ``except`` that caught `exc`: the validation error quotes the raw body,
    and must not become the new error's ``__context__``.

    Args:
        what: What went wrong, e.g. ``"The response is not a chat completion"``.
        exc: The validation error the body raised.
        body: The raw body, quoted (cut) in the error.
        redact: Applied to the body's start before it is cut, and to the message (whose
            location may name a key the server sent).
    """
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "top level"
    message = f"{what}: {first['msg']} at {where}"
    if redact is None:
        return APIResponseValidationError(message, body=excerpt(body))
    return APIResponseValidationError(redact(message), body=redacted_excerpt(body, redact))


def redacted_excerpt(body: bytes | str, redact: Redact) -> str:
    """The start of a raw body for an error to quote, redacted before it is cut.

    A window four times the cut is redacted, then cut, so no piece of a secret survives at
    the edge (a shorter piece than `redact` removes may, by design).
    """
    return excerpt(redact(excerpt(body, 4 * MAX_EXCERPT_CHARS)))


# --- helpers ---------------------------------------------------------------------------------


def _read(body: bytes | str | object, redact: Redact | None) -> object:
    return parse_json_body(body) if redact is None else redacted_body(body, redact)


def _header(value: str | None, redact: Redact | None) -> str | None:
    return redact(value) if value and redact is not None else value


def _redact_strings(value: dict[str, Any] | list[Any], redact: Redact) -> None:
    """Apply `redact` to every string in parsed JSON, keys included, in place, at any depth."""
    nodes: list[dict[str, Any] | list[Any]] = []
    texts: list[str] = []
    stack = [value]
    while stack:  # iterative: JSON nested as deep as the parser allows is no RecursionError
        node = stack.pop()
        nodes.append(node)
        for item in node if isinstance(node, list) else [*node, *node.values()]:
            if isinstance(item, str):
                texts.append(item)
            elif isinstance(item, (dict, list)):
                stack.append(item)
    # Every string checked at once (what is found in one is found in all joined); each is
    # rewritten only when there is something to remove, so a big clean body costs one pass.
    joined = "\n".join(texts)
    if redact(joined) == joined:
        return
    for node in nodes:
        if isinstance(node, list):
            node[:] = [redact(item) if isinstance(item, str) else item for item in node]
        else:
            pairs = [(redact(k), redact(v) if isinstance(v, str) else v) for k, v in node.items()]
            node.clear()
            node.update(pairs)


def _from_mapping(data: dict[object, object]) -> tuple[int | str | None, str]:
    inner = data.get("error")
    if isinstance(inner, dict):
        # OpenAI's shape; its code is usually a string like "invalid_request_error".
        return _as_code(inner.get("code")), _as_text(inner.get("message")) or _as_text(inner)
    if isinstance(inner, str) and "message" not in data:
        return _as_code(data.get("code")), shorten(inner, MAX_MESSAGE_CHARS)
    code = _as_code(data.get("code"))
    for key in ("message", "msg", "detail"):
        message = _as_text(data.get(key))
        if message:
            return code, message
    return code, _as_text(data)


def _as_code(value: object) -> int | str | None:
    # A numeric code, or one written in plain ASCII digits: `str.isdigit` also accepts "²" and
    # other digits `int` refuses, and `int` refuses very long strings (18 digits at most).
    # Any other code a server names (OpenAI's and llama.cpp's "context_length_exceeded") is
    # kept as text when it looks like a code, never as arbitrary text from the wire.
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit() and len(text) <= 18:
            return int(text)
        if _TEXT_CODE.fullmatch(text):
            return text
    return None


def _as_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return shorten(value.strip(), MAX_MESSAGE_CHARS)
    return shorten(json.dumps(value, ensure_ascii=False, default=str), MAX_MESSAGE_CHARS)


def _reason_phrase(status_code: int) -> str:
    try:
        return f"{HTTPStatus(status_code).phrase} (empty error body)"
    except ValueError:
        return "(empty error body)"
