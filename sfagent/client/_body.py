"""Reading a response body within a size cap, however it was compressed (pure).

httpx inflates a gzip body one network read at a time with no bound on the output, so 64 KiB
on the wire can become 64 MiB in memory in one step (a "gzip bomb": 4 MB that inflates to
4 GiB). The clients therefore ask for ``gzip`` and ``deflate`` only, read the raw bytes, and
inflate them here in pieces of at most `PIECE_BYTES`, counting every decoded byte against the
cap: memory stays near the cap whatever the compression ratio. Any other encoding a server
sends anyway is left to httpx (its output is still counted, one read at a time).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator

from sfagent.exceptions import APIResponseValidationError, ResponseTooLargeError

__all__ = [
    "ACCEPT_ENCODING",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "PIECE_BYTES",
    "BodyDecoder",
    "SizedBody",
    "check_max_bytes",
    "too_large",
]

DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024
"""32 MiB: about eight million tokens of text, far past any model's output limit, yet small
enough that a runaway or hostile response cannot exhaust a machine running many calls."""

PIECE_BYTES = 64 * 1024
"""The most bytes one inflate step may produce (and about what one network read holds)."""

ACCEPT_ENCODING = "gzip, deflate"
"""The encodings requested: the ones inflated here in bounded pieces."""

_ZLIB_CODINGS = {"gzip": zlib.MAX_WBITS | 16, "x-gzip": zlib.MAX_WBITS | 16, "deflate": 0}


def check_max_bytes(value: int | None) -> int | None:
    """Validate a ``max_response_bytes`` argument (``None`` means no cap).

    Raises:
        ConfigurationError: For anything but a positive int or ``None``.
    """
    from sfagent.exceptions import ConfigurationError

    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(
            f"max_response_bytes must be a positive int (bytes) or None, got {value!r}"
        )
    return value


def too_large(what: str, limit: int) -> ResponseTooLargeError:
    """The error for a response past its cap: names the cap, and how to raise it.

    Args:
        what: What grew too large, e.g. ``"The response body"``.
        limit: The cap, in bytes.
    """
    return ResponseTooLargeError(
        f"{what} exceeds max_response_bytes={limit} ({limit / 1048576:g} MiB), a size no real "
        "answer reaches; if this one is genuine, raise the cap: "
        "SiliconFlow(max_response_bytes=...) or AsyncSiliconFlow(max_response_bytes=...)",
        limit=limit,
    )


class SizedBody:
    """Collects a body's decoded pieces, failing as soon as they pass the cap.

    Args:
        limit: The cap in bytes, or ``None`` for none.
        what: How the error names the body.
    """

    __slots__ = ("_limit", "_parts", "_what", "size")

    def __init__(self, limit: int | None, what: str = "The response body") -> None:
        self._limit = limit
        self._what = what
        self._parts: list[bytes] = []
        self.size = 0
        """Bytes collected so far."""

    def add(self, piece: bytes) -> None:
        """Take the next piece.

        Raises:
            ResponseTooLargeError: When the body passes the cap.
        """
        self.size += len(piece)
        if self._limit is not None and self.size > self._limit:
            self._parts = []
            raise too_large(self._what, self._limit)
        self._parts.append(piece)

    def add_all(self, pieces: Iterable[bytes]) -> bytes:
        """Take every piece, then return the whole body."""
        for piece in pieces:
            self.add(piece)
        return self.value()

    def value(self) -> bytes:
        """The body collected so far."""
        return b"".join(self._parts)


class BodyDecoder:
    """Undo a ``Content-Encoding`` of gzip and/or deflate, one bounded piece at a time.

    Use `for_encoding` to get one; it returns ``None`` for encodings not handled here.
    """

    __slots__ = ("_stages",)

    def __init__(self, codings: list[str]) -> None:
        # Codings are listed in the order they were applied: undo them last first.
        self._stages = [_Inflater(coding) for coding in reversed(codings)]

    @classmethod
    def for_encoding(cls, header: str | None) -> BodyDecoder | None:
        """The decoder for a ``Content-Encoding`` header value.

        Returns:
            A decoder (one that passes bytes through for no encoding or ``identity``), or
            ``None`` when the header names an encoding other than gzip and deflate.
        """
        codings = [c.strip().lower() for c in (header or "").split(",")]
        codings = [c for c in codings if c and c != "identity"]
        if any(c not in _ZLIB_CODINGS for c in codings):
            return None
        return cls(codings)

    @property
    def identity(self) -> bool:
        """True when there is nothing to undo."""
        return not self._stages

    def decode(self, data: bytes) -> Iterator[bytes]:
        """The decoded pieces of the next raw bytes, each at most `PIECE_BYTES` long.

        Raises:
            APIResponseValidationError: When the bytes are not valid for the encoding.
        """
        pieces: Iterable[bytes] = (data,)
        for stage in self._stages:
            pieces = _through(stage, pieces)
        return iter(pieces)


def _through(stage: _Inflater, pieces: Iterable[bytes]) -> Iterator[bytes]:
    for piece in pieces:
        yield from stage.decode(piece)


class _Inflater:
    """One zlib stream; ``deflate`` is read zlib-wrapped or raw, as servers differ."""

    __slots__ = ("_coding", "_first", "_more", "_zlib")

    def __init__(self, coding: str) -> None:
        self._coding = coding
        self._first = coding == "deflate"  # may still turn out to be raw deflate
        self._more = False  # the last step filled its piece: output may wait inside zlib
        self._zlib = zlib.decompressobj(_ZLIB_CODINGS[coding] or zlib.MAX_WBITS)

    def decode(self, data: bytes) -> Iterator[bytes]:
        inflate = self._zlib
        while data or self._more:
            if inflate.eof:  # bytes after the end of the stream are ignored, as httpx does
                self._more = False
                return
            try:
                out = inflate.decompress(data, PIECE_BYTES)
            except zlib.error as exc:
                if not self._first:
                    raise APIResponseValidationError(
                        f"The response body is not valid {self._coding} data ({exc})"
                    ) from None
                self._zlib = inflate = zlib.decompressobj(-zlib.MAX_WBITS)
                self._first = False
                continue
            self._first = False
            data = inflate.unconsumed_tail
            self._more = len(out) == PIECE_BYTES
            if out:
                yield out
