"""Stream decode + accumulate throughput: sfagent against the openai SDK, on the same bytes.

Run: ``.venv/bin/python benchmarks/bench_stream.py [--repeat N]``. Prints a markdown table.

Each workload is a realistic SiliconFlow stream (usage on every chunk, reasoning then content,
32-hex ids) or an OpenAI-style parallel tool-call stream, fed either one event per read (what a
token-by-token network delivers) or in 64 KiB reads (a buffered replay). Both sides do the full
job: split SSE lines, parse each chunk into a model, fold the chunks into the final completion.

- sfagent: ``StreamState.feed`` per read, then ``finish()``.
- openai: ``openai._streaming.SSEDecoder.iter_bytes`` -> ``json.loads`` -> the SDK's default
  (non-strict) chunk construction, ``construct_type(ChatCompletionChunk)``, then
  ``ChatCompletionStreamState.handle_chunk`` and ``get_final_completion()``. The SDK's
  accumulator rebuilds a snapshot per chunk, so a parse-only SDK column is printed too: the
  floor any SDK-based accumulator would start from.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable, Iterator

from openai._models import construct_type
from openai._streaming import SSEDecoder
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk as OpenAIChunk

from sfagent.streaming import StreamState

_ID = "019adf32d7eba732fab10a923ab85c0b"
_WORDS = ("the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "模型", "工具")


def _sf_chunk(i: int, delta: dict[str, object], finish: str | None, tokens: int) -> bytes:
    chunk = {
        "id": _ID,
        "object": "chat.completion.chunk",
        "created": 1764681242,
        "model": "deepseek-ai/DeepSeek-R1",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        "system_fingerprint": "",
        "usage": {
            "prompt_tokens": 294,
            "completion_tokens": tokens,
            "total_tokens": 294 + tokens,
            "completion_tokens_details": {"reasoning_tokens": min(tokens, 2000)},
        },
    }
    return b"data: " + json.dumps(chunk, ensure_ascii=False).encode() + b"\n\n"


def reasoning_stream(n: int) -> list[bytes]:
    """A SiliconFlow R1 stream: n chunks, the first 40% reasoning, then content."""
    first = {"role": "assistant", "content": None, "reasoning_content": ""}
    events = [_sf_chunk(0, first, None, 0)]
    for i in range(1, n):
        word = " " + _WORDS[i % len(_WORDS)]
        if i < n * 0.4:
            delta: dict[str, object] = {"content": None, "reasoning_content": word}
        else:
            delta = {"content": word, "reasoning_content": None}
        events.append(_sf_chunk(i, delta, None, i))
    events.append(_sf_chunk(n, {"content": "", "reasoning_content": None}, "stop", n))
    events.append(b"data: [DONE]\n\n")
    return events


def tool_call_stream(calls: int, fragments: int) -> list[bytes]:
    """Parallel tool calls streamed OpenAI/DeepSeek style: id and name once, arguments in pieces."""

    def event(delta: dict[str, object], finish: str | None = None) -> bytes:
        chunk = {
            "id": "750800d8-716c-40da-ba87-c46db32cf8a3",
            "object": "chat.completion.chunk",
            "created": 1764681305,
            "model": "deepseek-chat",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return b"data: " + json.dumps(chunk).encode() + b"\n\n"

    events = [event({"role": "assistant", "content": ""})]
    for c in range(calls):
        first = {"index": c, "id": f"call_{c:02d}", "type": "function"}
        events.append(event({"tool_calls": [first | {"function": {"name": "f", "arguments": ""}}]}))
        pieces = ['{"city": "', *(f"p{j}" for j in range(fragments)), '"}']
        events.extend(
            event({"tool_calls": [{"index": c, "function": {"arguments": piece}}]})
            for piece in pieces
        )
    events.append(event({"content": ""}, "tool_calls"))
    events.append(b"data: [DONE]\n\n")
    return events


def _reads(events: list[bytes], size: int | None) -> list[bytes]:
    if size is None:
        return events
    body = b"".join(events)
    return [body[i : i + size] for i in range(0, len(body), size)]


def run_sfagent(reads: list[bytes]) -> object:
    """Decode, parse and accumulate with sfagent."""
    state = StreamState()
    for data in reads:
        state.feed(data)
    return state.finish()


def run_openai(reads: list[bytes]) -> object:
    """Decode, parse and accumulate with the openai SDK's own machinery."""
    state: ChatCompletionStreamState[object] = ChatCompletionStreamState()
    for sse in SSEDecoder().iter_bytes(iter(reads)):
        if sse.data.startswith("[DONE]"):
            break
        chunk = construct_type(type_=OpenAIChunk, value=json.loads(sse.data))
        state.handle_chunk(chunk)  # type: ignore[arg-type]
    return state.get_final_completion()


def run_openai_parse_only(reads: list[bytes]) -> object:
    """The SDK's decode and chunk parsing alone, without its accumulator (a lower bound)."""
    chunks = []
    for sse in SSEDecoder().iter_bytes(iter(reads)):
        if sse.data.startswith("[DONE]"):
            break
        chunks.append(construct_type(type_=OpenAIChunk, value=json.loads(sse.data)))
    return chunks


def _time(fn: Callable[[list[bytes]], object], reads: list[bytes], repeat: int) -> float:
    fn(reads)  # warm up
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn(reads)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def _workloads() -> Iterator[tuple[str, list[bytes], int]]:
    long = reasoning_stream(5000)
    tools = tool_call_stream(8, 200)
    mixed = reasoning_stream(2000)[:-1] + tool_call_stream(4, 100)[1:]
    for name, events in (("reasoning 5k", long), ("tool calls 8x200", tools), ("mixed", mixed)):
        chunks = sum(1 for e in events if not e.startswith(b"data: [DONE]"))
        yield f"{name}, 1 event/read", _reads(events, None), chunks
        yield f"{name}, 64 KiB reads", _reads(events, 65536), chunks


def main() -> None:
    """Run every workload and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    repeat = parser.parse_args().repeat
    print("| workload | chunks | MB | sfagent chunks/s | sfagent MB/s | openai chunks/s |", end="")
    print(" openai MB/s | speed-up | openai parse-only chunks/s | speed-up vs parse-only |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, reads, chunks in _workloads():
        mb = sum(map(len, reads)) / 1e6
        ours = _time(run_sfagent, reads, repeat)
        theirs = _time(run_openai, reads, repeat)
        parse_only = _time(run_openai_parse_only, reads, repeat)
        print(
            f"| {name} | {chunks} | {mb:.2f} | {chunks / ours:,.0f} | {mb / ours:.1f} | "
            f"{chunks / theirs:,.0f} | {mb / theirs:.1f} | {theirs / ours:.1f}x | "
            f"{chunks / parse_only:,.0f} | {parse_only / ours:.1f}x |"
        )


if __name__ == "__main__":
    main()
