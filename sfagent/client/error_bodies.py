"""Reading SiliconFlow's error bodies, whichever of their shapes arrives.

SiliconFlow answers errors in three shapes: ``{"code", "message", "data"}`` (400, 503, and 429
without ``code``), a bare string (401, 403, 404, 504), and, behind OpenAI-compatible gateways,
OpenAI's ``{"error": {"message", "type", "code"}}``. Everything here is pure: bytes or parsed JSON
in, values out, so the HTTP clients and the stream layer share one reading.
"""

from __future__ import annotations

import json
from http import HTTPStatus

from sfagent.exceptions import APIStatusError, status_error_class

__all__ = ["MAX_MESSAGE_CHARS", "error_from_response", "parse_error_body", "parse_json_body"]

MAX_MESSAGE_CHARS = 500
"""Longer messages (an HTML error page from a proxy, say) are cut to this many characters."""


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


def parse_error_body(body: bytes | str | object) -> tuple[int | None, str]:
    """Extract SiliconFlow's numeric error code and the message from an error body.

    Args:
        body: Raw bytes or text, or an already parsed JSON value (dict, string, ``None``...).

    Returns:
        ``(code, message)``: the numeric code when the body carries one (``None`` otherwise,
        including OpenAI's string codes such as ``"invalid_request_error"``), and the message,
        ``""`` when the body says nothing usable.
    """
    parsed = parse_json_body(body)
    if parsed is None:
        return None, ""
    if isinstance(parsed, str):
        return None, _shorten(parsed)
    if isinstance(parsed, dict):
        return _from_mapping(parsed)
    return None, _shorten(json.dumps(parsed, ensure_ascii=False))


def error_from_response(
    status_code: int, body: bytes | str | object, *, trace_id: str | None
) -> APIStatusError:
    """Build the typed error for an HTTP error status (or an error object inside a stream).

    Args:
        status_code: The HTTP status, or for a mid-stream error the status its code implies.
        body: The body as received (bytes or text) or already parsed.
        trace_id: The ``x-siliconcloud-trace-id`` response header, when present.

    Returns:
        An instance of the `APIStatusError` subclass for the status; not raised.
    """
    parsed = parse_json_body(body)
    code, message = parse_error_body(parsed)
    if not message:
        message = _reason_phrase(status_code)
    cls = status_error_class(status_code)
    return cls(message, status_code=status_code, code=code, trace_id=trace_id, body=parsed)


def _from_mapping(data: dict[object, object]) -> tuple[int | None, str]:
    inner = data.get("error")
    if isinstance(inner, dict):
        # OpenAI's shape; its code is usually a string like "invalid_request_error".
        code = _as_code(inner.get("code"))
        message = _text(inner.get("message"))
        return code, message or _shorten(json.dumps(inner, ensure_ascii=False, default=str))
    if isinstance(inner, str) and "message" not in data:
        return _as_code(data.get("code")), _shorten(inner)
    code = _as_code(data.get("code"))
    for key in ("message", "msg", "detail"):
        message = _text(data.get(key))
        if message:
            return code, message
    return code, _shorten(json.dumps(data, ensure_ascii=False, default=str))


def _as_code(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return ascii_code(value)
    return None


def ascii_code(text: str) -> int | None:
    """An error code written as a string of ASCII digits, or ``None``.

    `str.isdigit` also accepts "²" and other digits `int` refuses, and `int` refuses very
    long strings: a code is at most 18 plain ASCII digits.
    """
    text = text.strip()
    if text.isascii() and text.isdigit() and len(text) <= 18:
        return int(text)
    return None


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return _shorten(value.strip())
    return _shorten(json.dumps(value, ensure_ascii=False, default=str))


def _shorten(text: str) -> str:
    if len(text) <= MAX_MESSAGE_CHARS:
        return text
    return text[: MAX_MESSAGE_CHARS - 1] + "…"


def _reason_phrase(status_code: int) -> str:
    try:
        return f"{HTTPStatus(status_code).phrase} (empty error body)"
    except ValueError:
        return "(empty error body)"
