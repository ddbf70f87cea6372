"""Trimming and the completed part of a run, table-style, on small hand-written histories."""

from __future__ import annotations

from typing import Any

import pytest

from sfagent.messages import (
    AssistantMessage,
    MessageBase,
    SystemMessage,
    ToolMessage,
    UserMessage,
    image_part,
    parse_message,
)
from sfagent.sessions import TrimByCount, TrimByTokens, estimate_tokens, history_problems
from sfagent.sessions._bridge import completed_part
from sfagent.sessions.trimming import MEDIA_TOKENS, MESSAGE_OVERHEAD, Trimmer, safe_cuts


def calls(*ids: str) -> AssistantMessage:
    return AssistantMessage(
        tool_calls=[{"id": i, "function": {"name": "f", "arguments": "{}"}} for i in ids]  # type: ignore[misc]
    )


S = SystemMessage(content="sys")
U1, U2 = UserMessage(content="u1"), UserMessage(content="u2")
A1, A2 = AssistantMessage(content="a1"), AssistantMessage(content="a2")
C = calls("x", "y")
TX, TY = ToolMessage(tool_call_id="x", content="rx"), ToolMessage(tool_call_id="y", content="ry")
HISTORY: list[MessageBase] = [S, U1, C, TX, TY, A1, U2, A2]
#                             0  1   2  3   4   5   6   7


def names(messages: list[MessageBase]) -> list[str]:
    labels = ["S", "U1", "C", "TX", "TY", "A1", "U2", "A2"]
    table = {id(m): n for n, m in zip(labels, HISTORY, strict=True)}
    return [table[id(m)] for m in messages]


@pytest.mark.parametrize(
    ("limit", "kept"),
    [
        (8, "S U1 C TX TY A1 U2 A2"),  # fits: untouched
        (7, "S C TX TY A1 U2 A2"),
        (6, "S A1 U2 A2"),  # 6 would start on TX: the whole exchange goes
        (5, "S A1 U2 A2"),
        (4, "S A1 U2 A2"),
        (3, "S U2 A2"),
        (2, "S A2"),
        (1, "S"),  # only the system prompt fits
    ],
)
def test_trim_by_count(limit: int, kept: str) -> None:
    assert names(TrimByCount(limit)(HISTORY)) == kept.split()


def test_safe_cuts_never_fall_inside_an_exchange() -> None:
    assert safe_cuts(HISTORY) == [True, True, True, False, False, True, True, True, True]


def test_system_messages_anywhere_are_kept() -> None:
    mid = SystemMessage(content="now in French")
    history: list[MessageBase] = [U1, A1, mid, U2, A2]
    assert TrimByCount(2)(history) == [mid, A2]


def test_trim_by_tokens_counts_the_estimate() -> None:
    costs = [estimate_tokens(m) for m in HISTORY]
    budget = sum(costs[5:]) + costs[0]  # the system prompt and A1 onwards
    assert names(TrimByTokens(budget)(HISTORY)) == ["S", "A1", "U2", "A2"]
    assert names(TrimByTokens(budget - 1)(HISTORY)) == ["S", "U2", "A2"]


@pytest.mark.parametrize(
    ("message", "tokens"),
    [
        (UserMessage(content=""), MESSAGE_OVERHEAD),
        (UserMessage(content="abcd" * 10), MESSAGE_OVERHEAD + 10),
        (UserMessage(content="abcde"), MESSAGE_OVERHEAD + 2),
        (UserMessage(content="中文字"), MESSAGE_OVERHEAD + 3),  # a token a character
        (UserMessage(content=[image_part("data:image/png;base64," + "A" * 10_000)]), 4 + 1000),
        (ToolMessage(tool_call_id="abcd", content="abcd"), MESSAGE_OVERHEAD + 2),
    ],
)
def test_estimate_tokens(message: MessageBase, tokens: int) -> None:
    assert MEDIA_TOKENS == 1000
    assert estimate_tokens(message) == tokens


def test_estimate_counts_the_calls() -> None:
    assert estimate_tokens(C) > estimate_tokens(AssistantMessage(content=""))


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "10", None])
def test_limits_are_checked(bad: Any) -> None:
    with pytest.raises(Exception, match="must be a whole number >= 1") as caught:
        TrimByCount(bad)
    assert type(caught.value).__name__ == "UserError"
    with pytest.raises(type(caught.value), match="max_tokens"):
        TrimByTokens(bad)


def test_a_bad_estimate_is_a_clear_error() -> None:
    with pytest.raises(Exception, match="estimate must be a function"):
        TrimByTokens(10, estimate=3)  # type: ignore[arg-type]
    with pytest.raises(Exception, match="estimate must return a whole number"):
        TrimByTokens(10, estimate=lambda m: -1)(HISTORY)


def test_the_strategies_are_trimmers() -> None:
    assert isinstance(TrimByCount(3), Trimmer)
    assert isinstance(TrimByTokens(3), Trimmer)
    assert repr(TrimByTokens(300)) == "TrimByTokens(300)"


@pytest.mark.parametrize(
    ("messages", "problems"),
    [
        (HISTORY, []),
        ([U1, TX], ["messages[1]: tool message answers no call ('x')"]),
        ([U1, C, TX, U2], ["messages[1]: assistant call 'y' has no tool message answering it"]),
        ([U1, C, TX], ["messages[1]: assistant call 'y' has no tool message answering it"]),
        ([U1, C, TY, TX], []),  # answers in any order
    ],
)
def test_history_problems(messages: list[MessageBase], problems: list[str]) -> None:
    assert history_problems(messages) == problems


@pytest.mark.parametrize(
    ("messages", "kept"),
    [
        ([], []),
        ([U1], [U1]),
        ([U1, C, TX, TY, A1], [U1, C, TX, TY, A1]),
        ([U1, C], [U1]),  # the calls never ran
        ([U1, C, TX], [U1]),  # one of two ran: the exchange is not complete
        ([U1, C, TX, TY, calls("z")], [U1, C, TX, TY]),
        ([U1, C, TX, U2, A2], [U1]),  # a turn after unanswered calls is not kept either
    ],
)
def test_completed_part(messages: list[MessageBase], kept: list[MessageBase]) -> None:
    assert completed_part(messages) == kept


def test_parsed_and_built_messages_trim_alike() -> None:
    parsed = [parse_message(m.to_wire()) for m in HISTORY]
    assert [m.to_wire() for m in TrimByCount(5)(parsed)] == [
        m.to_wire() for m in TrimByCount(5)(HISTORY)
    ]
