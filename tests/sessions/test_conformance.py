"""The conformance checks (`sfagent.testing.sessions`) on sfagent's stores and trimmers, and on
broken ones: a check that passes everything would prove nothing."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from sfagent.messages import MessageBase, SystemMessage
from sfagent.sessions import (
    MemorySessionStore,
    SQLiteSessionStore,
    TrimByCount,
    TrimByTokens,
    estimate_tokens,
    history_problems,
)
from sfagent.sessions.trimming import safe_cuts
from sfagent.testing.sessions import (
    assert_trimmed,
    check_concurrent_appends,
    check_store,
    check_trimmer,
    histories,
)


def one(_message: MessageBase) -> int:
    return 1


# --- the stores ------------------------------------------------------------------------------


def test_memory_store_conforms() -> None:
    check_store(MemorySessionStore, max_examples=60)


def test_sqlite_store_conforms(tmp_path: Path) -> None:
    numbers = itertools.count()
    check_store(lambda: SQLiteSessionStore(tmp_path / f"s{next(numbers)}.db"), max_examples=40)


def test_memory_store_keeps_concurrent_appends() -> None:
    store = MemorySessionStore()
    check_concurrent_appends(lambda: store)


def test_sqlite_store_keeps_concurrent_appends(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    # A store object per thread, each with its own connections: as separate processes would.
    check_concurrent_appends(lambda: SQLiteSessionStore(path), writers=6, appends=15)


class LosesTheLastMessage(MemorySessionStore):
    def append(self, conversation_id: str, messages: Sequence[MessageBase]) -> None:
        super().append(conversation_id, list(messages)[:-1])


class Interleaves(MemorySessionStore):
    """Appends one message at a time, letting other threads in between."""

    def append(self, conversation_id: str, messages: Sequence[MessageBase]) -> None:
        import time

        for message in messages:
            super().append(conversation_id, [message])
            time.sleep(0.0005)


def test_the_store_check_catches_a_lossy_store() -> None:
    with pytest.raises(AssertionError, match="changed"):
        check_store(LosesTheLastMessage, max_examples=30)


def test_the_concurrency_check_catches_interleaved_appends() -> None:
    store = Interleaves()
    with pytest.raises(AssertionError, match=r"split|out of order"):
        check_concurrent_appends(lambda: store, writers=4, appends=10)


# --- the trimmers ----------------------------------------------------------------------------


def test_trim_by_count_conforms() -> None:
    check_trimmer(TrimByCount, cost=one)


def test_trim_by_tokens_conforms() -> None:
    check_trimmer(TrimByTokens, cost=estimate_tokens)


def test_trim_by_tokens_with_a_custom_estimate_conforms() -> None:
    def chars(message: MessageBase) -> int:
        return len(str(message.to_wire().get("content") or "")) + 1

    check_trimmer(lambda limit: TrimByTokens(limit, estimate=chars), cost=chars)


def naive_last(limit: int):  # type: ignore[no-untyped-def]
    """The usual bug: keep the last `limit` messages, whatever they are."""
    return lambda messages: list(messages[-limit:])


def drops_the_system_prompt(limit: int):  # type: ignore[no-untyped-def]
    def trim(messages: Sequence[MessageBase]) -> list[MessageBase]:
        kept = TrimByCount(limit + 1)(messages)
        return [m for m in kept if not isinstance(m, SystemMessage)]

    return trim


def test_the_trimmer_check_catches_a_dangling_tool_message() -> None:
    # Counted in messages the naive cut is always within the limit; it breaks exchanges.
    with pytest.raises(AssertionError, match=r"no call|no tool message|not the system"):
        check_trimmer(naive_last, cost=one)


def test_the_trimmer_check_catches_a_lost_system_prompt() -> None:
    with pytest.raises(AssertionError, match="not the system messages"):
        check_trimmer(drops_the_system_prompt)


def test_the_trimmer_check_catches_a_result_over_the_limit() -> None:
    with pytest.raises(AssertionError, match="over the limit"):
        check_trimmer(lambda limit: TrimByCount(limit + 1), cost=one)


# --- properties of the built-in strategies beyond the contract -------------------------------


@settings(max_examples=300, deadline=None)
@given(history=histories(max_turns=8), data=st.data())
def test_trimming_keeps_the_most_that_fits(history: list[MessageBase], data: st.DataObject) -> None:
    limit = data.draw(st.integers(1, len(history) + 1))
    trimmed = TrimByCount(limit)(history)
    cut = assert_trimmed(history, trimmed, limit=limit, cost=one)
    safe = safe_cuts(history)
    for earlier in range(cut):
        if safe[earlier]:  # an earlier safe cut would keep more, so it must not fit
            kept = sum(isinstance(m, SystemMessage) for m in history[:earlier])
            assert kept + len(history) - earlier > limit
    assert TrimByCount(limit)(trimmed) == trimmed  # trimming twice changes nothing


@settings(max_examples=200, deadline=None)
@given(history=histories(max_turns=8))
def test_generated_histories_are_sound_and_every_safe_cut_is(history: list[MessageBase]) -> None:
    assert history_problems(history) == []
    for cut, safe in enumerate(safe_cuts(history)):
        if safe:
            kept = [m for m in history[:cut] if isinstance(m, SystemMessage)] + history[cut:]
            assert history_problems(kept) == []
