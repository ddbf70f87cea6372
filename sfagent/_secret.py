"""The API key: a holder whose repr never shows it, and the one way text is cleaned of it.

Whatever a server sends back (an error body, a stream event, a header) or a transport says may
echo the key. `Secret.redact` is the one function every such text goes through before it is
kept in an error, a log record or an event: it removes the key and every run of
`MIN_FRAGMENT` or more of its characters (what is left of a key cut by a length limit, or half
of one masked by a gateway). A key shorter than that is never redacted: its "fragments" would be
ordinary words, and a message with every ``e`` masked out is not worth reading.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["MASK", "MIN_FRAGMENT", "Redactor", "Secret"]

MIN_FRAGMENT = 6
"""The shortest run of the key's characters that is removed from text."""

MASK = "***"
"""What a removed key, or run of its characters, is replaced with."""


class Redactor(Protocol):
    """Anything that cuts a key out of text: a `Secret`, or a client (which holds its own)."""

    def redact(self, text: str) -> str:
        """`text` without the key."""


class Secret:
    """Wraps a secret string; its repr is ``'***'``, and it removes itself from text.

    Args:
        value: The secret, or ``None`` when there is none (yet).
    """

    __slots__ = ("_fragments", "_value")

    def __init__(self, value: str | None) -> None:
        self._value = value
        text = value or ""
        runs = range(len(text) - MIN_FRAGMENT + 1)  # empty for a secret shorter than that
        self._fragments = frozenset(text[i : i + MIN_FRAGMENT] for i in runs)

    @property
    def value(self) -> str | None:
        """The secret itself: send it, never show it."""
        return self._value

    def __repr__(self) -> str:
        return "'***'" if self._value is not None else "None"

    def redact(self, text: str) -> str:
        """`text` without the secret or any run of `MIN_FRAGMENT` or more of its characters.

        Each run is replaced by `MASK`; text without one comes back unchanged,
        and so does every text when the secret is shorter than `MIN_FRAGMENT` characters.

        Example:
            >>> Secret("sk-0123456789").redact("bad key sk-0123456789, or sk-012345…")
            'bad key ***, or ***…'
        """
        if not self._fragments or not text:
            return text
        assert self._value is not None
        text = text.replace(self._value, MASK)  # the whole key, the usual echo, at C speed
        spans = self._runs(text)
        if not spans:
            return text
        parts: list[str] = []
        done = 0
        for start, end in spans:
            parts += (text[done:start], MASK)
            done = end
        parts.append(text[done:])
        return "".join(parts)

    def _runs(self, text: str) -> list[tuple[int, int]]:
        """Where runs of the secret's characters lie in `text`: merged ``(start, end)`` spans."""
        starts = []
        for fragment in self._fragments:  # a few dozen C-speed searches, not a Python loop
            at = text.find(fragment)
            while at >= 0:
                starts.append(at)
                at = text.find(fragment, at + 1)
        spans: list[tuple[int, int]] = []
        for start in sorted(starts):
            end = start + MIN_FRAGMENT
            if spans and start <= spans[-1][1]:
                spans[-1] = (spans[-1][0], max(end, spans[-1][1]))
            else:
                spans.append((start, end))
        return spans
