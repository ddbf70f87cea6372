"""A holder for the API key, so that no repr of anything holding it can show it."""

from __future__ import annotations


class Secret:
    """Wraps a secret string; its repr is ``'***'``."""

    __slots__ = ("value",)

    def __init__(self, value: str | None) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "'***'" if self.value is not None else "None"
