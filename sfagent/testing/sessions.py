"""Conformance checks for session stores and trimming strategies (property-based, hypothesis).

Any `SessionStore` and any `Trimmer` must pass them; sfagent runs them on its own. They need
``hypothesis`` (in sfagent's ``dev`` extra), which only this module imports::

    from sfagent.testing.sessions import check_store, check_trimmer

    def test_my_store(tmp_path):
        check_store(lambda: MyStore.fresh(tmp_path))

    def test_my_trimmer():
        check_trimmer(lambda limit: KeepRecent(limit), cost=lambda message: 1)

Each generates random valid histories (system prompts, users' text and images, assistants
answering or calling one to three tools, the answers in any order, reasoning, non-ASCII text)
and random cut points or limits, and asserts the rules the API and the docs promise.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from typing import Any

from hypothesis import HealthCheck, given, settings, strategies as st

from sfagent.messages import (
    AssistantMessage,
    FunctionCall,
    ImagePart,
    ImageURL,
    MessageBase,
    SystemMessage,
    TextPart,
    ToolCall,
    ToolMessage,
    UserMessage,
)
from sfagent.sessions.store import Session, SessionStore
from sfagent.sessions.trimming import TrimByCount, Trimmer, history_problems

__all__ = [
    "assert_trimmed",
    "check_concurrent_appends",
    "check_store",
    "check_trimmer",
    "dumped",
    "histories",
]

_TEXT = st.text(
    alphabet=st.sampled_from("abc xyz 019.,'\"\\{}[]\n\t中文字ü😀"), min_size=0, max_size=30
)
_IDS = st.sampled_from(["conv-1", "user:42/chat", "中文 会话", "x'; DROP TABLE t; --", "a" * 512])


@st.composite
def histories(draw: st.DrawFn, *, max_turns: int = 6) -> list[MessageBase]:
    """A strategy for valid conversations: every tool call answered, in call order or not."""
    counter = itertools.count()
    messages: list[MessageBase] = []
    if draw(st.booleans()):
        messages.append(SystemMessage(content=draw(_TEXT) or "Be brief."))
    for _ in range(draw(st.integers(0, max_turns))):
        if draw(st.integers(0, 9)) == 0:  # now and then, instructions mid-conversation
            messages.append(SystemMessage(content=draw(_TEXT)))
        messages.append(_user(draw))
        for _round in range(draw(st.integers(0, 2))):
            messages += _tool_round(draw, counter)
        if draw(st.integers(0, 4)):  # most turns end with an answer; some stop after tools
            messages.append(AssistantMessage(content=draw(_TEXT)))
    return messages


def _user(draw: st.DrawFn) -> UserMessage:
    if draw(st.integers(0, 4)):
        return UserMessage(content=draw(_TEXT))
    image = ImagePart(image_url=ImageURL(url="data:image/png;base64,iVBORw0KGgo="))
    return UserMessage(content=[TextPart(text=draw(_TEXT)), image])


def _tool_round(draw: st.DrawFn, counter: itertools.count[int]) -> list[MessageBase]:
    calls = [
        ToolCall(
            id=f"call_{next(counter)}",
            function=FunctionCall(
                name=draw(st.sampled_from(["lookup", "add", "search_web"])),
                arguments=draw(st.sampled_from(['{"city": "Paris"}', '{"a": 1, "b": 2}', ""])),
            ),
        )
        for _ in range(draw(st.integers(1, 3)))
    ]
    reasoning = draw(st.none() | _TEXT)
    content = draw(st.none() | _TEXT)
    caller = AssistantMessage(content=content, reasoning_content=reasoning, tool_calls=calls)
    answers = [ToolMessage(tool_call_id=c.id, content=draw(_TEXT)) for c in calls]
    return [caller, *draw(st.permutations(answers))]


def dumped(messages: Sequence[MessageBase]) -> list[dict[str, Any]]:
    """Messages as comparable data (equal models, whatever their caches hold)."""
    return [m.model_dump(mode="json", exclude_none=True) for m in messages]


def assert_trimmed(
    original: Sequence[MessageBase],
    trimmed: Sequence[MessageBase],
    *,
    limit: int | None = None,
    cost: Callable[[MessageBase], int] | None = None,
) -> int:
    """Assert that `trimmed` is a sound cut of `original`; return where it was cut.

    The rules: `trimmed` is the system messages before one cut point followed by everything
    from it, in order; it breaks no tool exchange that `original` had whole; and, given a
    `limit` and a per-message `cost`, it keeps all of a history within the limit and is
    within the limit whenever the system messages alone are.
    """
    assert isinstance(trimmed, list), f"a trimmer returns a list, got {type(trimmed).__name__}"
    whole, kept = dumped(original), dumped(trimmed)
    cuts = [
        c
        for c in range(len(whole) + 1)
        if [m for m in whole[:c] if m["role"] == "system"] + whole[c:] == kept
    ]
    assert cuts, "the result is not the system messages plus an unbroken end of the history"
    if not history_problems(original):
        assert history_problems(trimmed) == [], history_problems(trimmed)
    if limit is not None and cost is not None:
        total = sum(cost(m) for m in original)
        if total <= limit:
            assert kept == whole, "a history within the limit was cut"
        floor = sum(cost(m) for m in original if isinstance(m, SystemMessage))
        if floor <= limit:
            assert sum(cost(m) for m in trimmed) <= limit, "the result is over the limit"
    return cuts[0]


def check_trimmer(
    make: Callable[[int], Trimmer],
    *,
    cost: Callable[[MessageBase], int] | None = None,
    max_examples: int = 200,
) -> None:
    """Hold a trimming strategy to the rules of `assert_trimmed` on random histories.

    Args:
        make: The strategy for a limit (e.g. ``lambda n: TrimByCount(n)``).
        cost: What one message counts for against the limit (``lambda m: 1`` for a message
            count); ``None`` checks the cut only, not the limit.
        max_examples: Histories tried.
    """

    @settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
        report_multiple_bugs=False,  # one plain AssertionError, not a group of them
    )
    @given(history=histories(), data=st.data())
    def trims(history: list[MessageBase], data: st.DataObject) -> None:
        total = sum(cost(m) for m in history) if cost is not None else len(history)
        limit = data.draw(st.integers(1, total + 2), label="limit")
        before = dumped(history)
        trimmed = make(limit)(history)
        assert dumped(history) == before, "the trimmer changed its input"
        assert_trimmed(history, trimmed, limit=limit, cost=cost)

    trims()


def check_store(make_store: Callable[[], SessionStore], *, max_examples: int = 50) -> None:
    """Hold a store to the protocol on random conversations appended in random pieces.

    Each example appends several conversations, each cut at random points into pieces
    appended in a random interleaving, then checks that each loads back whole and in order
    (the same models), that `conversations` lists them, that a trimmed session of one is a
    sound cut, and that clearing one leaves the others.

    Args:
        make_store: A new, empty store for each call.
        max_examples: Examples tried.
    """

    @settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
        report_multiple_bugs=False,  # one plain AssertionError, not a group of them
    )
    @given(data=st.data())
    def stores(data: st.DataObject) -> None:
        store = make_store()
        ids = data.draw(st.lists(_IDS, min_size=1, max_size=3, unique=True), label="ids")
        wanted = {cid: data.draw(histories(), label=f"history {cid!r}") for cid in ids}
        pieces = {cid: _pieces(data, history) for cid, history in wanted.items()}
        while any(pieces.values()):
            cid = data.draw(st.sampled_from([c for c in ids if pieces[c]]), label="next")
            store.append(cid, pieces[cid].pop(0))
        for cid, history in wanted.items():
            assert dumped(store.load(cid)) == dumped(history), f"conversation {cid!r} changed"
        assert store.conversations() == sorted(c for c in ids if wanted[c])
        cid = ids[0]
        limit = data.draw(st.integers(1, len(wanted[cid]) + 1), label="limit")
        sent = Session(store, cid, trim=TrimByCount(limit)).history()
        assert_trimmed(wanted[cid], sent, limit=limit, cost=lambda _m: 1)
        store.clear(cid)
        assert store.load(cid) == []
        for other in ids[1:]:
            assert dumped(store.load(other)) == dumped(wanted[other])
        assert cid not in store.conversations()

    stores()


def _pieces(data: st.DataObject, history: list[MessageBase]) -> list[list[MessageBase]]:
    cuts = sorted(data.draw(st.sets(st.integers(0, len(history)), max_size=4), label="cuts"))
    bounds = [0, *cuts, len(history)]
    return [history[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def check_concurrent_appends(
    open_store: Callable[[], SessionStore], *, writers: int = 8, appends: int = 25
) -> None:
    """Many threads append to one conversation at once; none of it may be lost or interleaved.

    Args:
        open_store: A handle on one shared, empty store (called once per writer: return the
            same object, or a new connection to the same data).
        writers: Threads appending at once.
        appends: Appends per thread, each of a user message and its answer.
    """
    cid = "concurrent"
    start = threading.Barrier(writers)
    failures: list[BaseException] = []

    def write(writer: int) -> None:
        try:
            store = open_store()
            start.wait(timeout=30)
            for n in range(appends):
                tag = f"{writer}:{n}"
                pair = [UserMessage(content=tag), AssistantMessage(content=f"re {tag}")]
                store.append(cid, pair)
        except BaseException as exc:  # reported below, in the caller's thread
            failures.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures
    loaded = open_store().load(cid)
    assert len(loaded) == 2 * writers * appends, "messages were lost"
    seen: dict[str, int] = {}
    for user, answer in itertools.zip_longest(loaded[::2], loaded[1::2]):
        tag = str(getattr(user, "content", ""))
        assert getattr(answer, "content", None) == f"re {tag}", "an append was split"
        writer, n = tag.split(":")
        assert int(n) == seen.get(writer, -1) + 1, "one writer's appends are out of order"
        seen[writer] = int(n)
    assert len(seen) == writers
