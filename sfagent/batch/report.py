"""A batch's report: one self-contained HTML page (``sfagent batch --report report.html``).

The page shows throughput over time against the RPM and TPM limits, the latency
distribution, tokens and cost per task, and failures by type, as inline SVG drawn here: no
script library, no stylesheet or font to fetch, and a Content-Security-Policy that forbids
any fetch, so the file opens anywhere, offline. Every text from the results (task ids, error
types and messages, the title) is HTML-escaped; outputs and transcripts never enter the page.

The results are read in one pass, so a generator over a 100k-line results file is fine: each
row leaves a few numbers behind (its latency, tokens and cost), the first message of each
error type, and the ten largest tasks' ids.

Summary numbers sit in elements carrying ``data-metric="name"`` and ``data-value="exact"``
(the exact value: an int, a float's repr, a Decimal's str, or empty when unknown), so a test
or a script can read them back. Percentiles are nearest-rank: the p-th percentile of n
sorted latencies is the ``ceil(p / 100 * n)``-th one, always a latency that was measured.
On load, a small script writes ``document.body.dataset.rendered``: a JSON object listing each
chart's id, laid-out width and height, and how many data marks it drew.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import math
import os
from array import array
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from html import escape
from itertools import accumulate
from pathlib import Path
from typing import Any

from sfagent._text import shorten
from sfagent._version import __version__
from sfagent.batch import _report_charts as charts

__all__ = ["render_report", "write_report"]

WINDOW_SECONDS = 60
"""The rolling window of the throughput charts, the one RPM and TPM are counted over."""

TOP_TASKS = 10
"""How many of the largest tasks (by total tokens) the page lists."""

_MESSAGE_CHARS = 300
_ID_CHARS = 120
_MAX_BARS = 15
_DRAWABLE = 10**300  # a count past any float is drawn as this (the page's number stays exact)
_POINTS = 360  # samples along the throughput charts: finer than the eye needs at 720 px
_USAGE_LABELS = {
    "total_tokens": "Total tokens",
    "prompt_tokens": "Prompt tokens",
    "completion_tokens": "Completion tokens",
    "requests": "Requests",
    "tool_calls": "Tool calls",
}


class _Failure:
    """One error type: how many tasks failed with it, and the first one's id and message."""

    __slots__ = ("count", "message", "task_id")

    def __init__(self, task_id: str, message: str) -> None:
        self.count = 0
        self.task_id = task_id
        self.message = message


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _float(value: Any) -> float | None:
    """`value` as a finite float, or ``None`` (not a number, NaN, infinite, beyond a float)."""
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:  # an int past 1e308
            return None
        return number if math.isfinite(number) else None
    return None


def _decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return amount if amount.is_finite() else None


class _Totals:
    """Everything the page needs from the results, gathered in one pass (`add` each row)."""

    def __init__(self) -> None:
        self.tasks = self.done = self.failed = self.retried = self.unpriced = 0
        self.usage = dict.fromkeys(
            ("prompt_tokens", "completion_tokens", "total_tokens", "requests", "tool_calls"), 0
        )
        self.costs: dict[str, Decimal] = {}
        # Small numbers only, one per task: 8 bytes each in an array, not a boxed float.
        self.latency_done = array("d")
        self.latency_failed = array("d")
        self.task_tokens = array("d")
        self.task_costs = array("d")
        self.failures: dict[str, _Failure] = {}
        self._largest: list[tuple[int, int, str, str]] = []

    def add(self, row: Mapping[str, Any]) -> None:
        """Count one result row (a dict as in the results JSONL file)."""
        self.tasks += 1
        task_id = str(row.get("id", ""))
        status = row.get("status")
        self.done += status == "done"
        self.retried += _int(row.get("attempt")) > 1
        usage = row.get("usage")
        usage = usage if isinstance(usage, Mapping) else {}
        for key in self.usage:
            self.usage[key] += _int(usage.get(key))
        tokens = _int(usage.get("total_tokens"))
        if (tokens_shown := _float(tokens)) is not None:
            self.task_tokens.append(tokens_shown)
        cost = _decimal(row.get("cost"))
        if cost is None:
            self.unpriced += 1
        else:
            currency = str(row.get("currency") or "CNY")
            self.costs[currency] = self.costs.get(currency, Decimal(0)) + cost
            if (cost_shown := _float(cost)) is not None:
                self.task_costs.append(cost_shown)
        latency = _float(row.get("latency"))
        if latency is not None:
            (self.latency_done if status == "done" else self.latency_failed).append(latency)
        if status == "failed":
            self._add_failure(row, task_id)
        entry = (tokens, -self.tasks, task_id, "" if cost is None else str(cost))
        if len(self._largest) < TOP_TASKS:
            heapq.heappush(self._largest, entry)
        else:
            heapq.heappushpop(self._largest, entry)

    def _add_failure(self, row: Mapping[str, Any], task_id: str) -> None:
        self.failed += 1
        kind = str(row.get("error_type") or "unknown")
        failure = self.failures.get(kind)
        if failure is None:
            message = str(row.get("error_message") or "")
            failure = self.failures[kind] = _Failure(task_id, shorten(message, _MESSAGE_CHARS))
        failure.count += 1

    def largest(self) -> list[tuple[int, str, str]]:
        """The largest tasks by total tokens, largest first (earlier first on ties)."""
        ranked = sorted(self._largest, reverse=True)
        return [(tokens, task_id, cost) for tokens, _, task_id, cost in ranked]


def _percentile(ordered: list[float], p: float) -> float | None:
    """The nearest-rank `p`-th percentile of ascending `ordered`, or ``None`` when empty."""
    if not ordered:
        return None
    return ordered[max(math.ceil(p / 100 * len(ordered)), 1) - 1]


def _rolling(buckets: list[tuple[int, int]], span: float) -> tuple[list[tuple[float, float]], int]:
    """A rolling 60-second sum over sorted per-second `buckets`: chart points and the peak.

    Each point is the highest window sum within its slice of the time axis, so a peak that
    touches a limit is never smoothed away. Works on the buckets alone (no array per second),
    so a bad ``t`` cannot make it allocate a huge array.
    """
    times = [t for t, _ in buckets]
    prefix = list(accumulate((v for _, v in buckets), initial=0))

    def window(x: float) -> int:  # the buckets with x - 60 < t <= x
        return prefix[bisect_right(times, x)] - prefix[bisect_right(times, x - WINDOW_SECONDS)]

    peak = max((window(t) for t in times), default=0)
    step = span / _POINTS
    points: list[tuple[float, float]] = []
    j = 0
    for k in range(_POINTS + 1):
        start, best = k * step, window(k * step)
        while j < len(times) and times[j] < start + step:
            if times[j] >= start:
                best = max(best, window(times[j]))
            j += 1
        points.append((start, float(min(best, _DRAWABLE))))
    return points, peak


def _timeline(timeline: Iterable[Mapping[str, Any]]) -> tuple[list[tuple[int, int]], ...]:
    """The per-second buckets as sorted ``(t, requests)`` and ``(t, tokens)`` pairs."""
    rows = sorted(
        (_int(b.get("t")), _int(b.get("requests")), _int(b.get("tokens"))) for b in timeline
    )
    return [(t, r) for t, r, _ in rows], [(t, k) for t, _, k in rows]


def _metric(name: str, label: str, value: str, shown: str, note: str = "") -> str:
    extra = f'<span class="note">{escape(note)}</span>' if note else ""
    return (
        f'<div class="metric"><dt>{escape(label)}</dt><dd data-metric="{escape(name)}" '
        f'data-value="{escape(value)}">{escape(shown)}</dd>{extra}</div>'
    )


def _exact(value: float | int | None) -> str:
    return "" if value is None else repr(value)


def _cost_metric(totals: _Totals) -> str:
    note = f"{totals.unpriced:,} of {totals.tasks:,} tasks unpriced" if totals.unpriced else ""
    if not totals.costs:
        return _metric("total_cost", "Total cost", "", "unknown" if totals.tasks else "0", note)
    if len(totals.costs) > 1:  # different currencies are never added up
        shown = " + ".join(f"{amount:f} {cur}" for cur, amount in sorted(totals.costs.items()))
        return _metric("total_cost", "Total cost", "", shown, note)
    (currency, amount), *_ = totals.costs.items()
    return _metric("total_cost", "Total cost", str(amount), f"{amount:,f} {currency}", note) + (
        _metric("currency", "Currency", currency, currency)
    )


def _per_minute(count: int, wall: float | None) -> float | None:
    """`count` per minute over `wall` seconds, or ``None`` (no time passed, or past a float)."""
    if wall is None or wall <= 0:
        return None
    try:
        return _float(count * 60 / wall)
    except OverflowError:
        return None


def _summary(
    totals: _Totals, wall: float | None, latencies: list[float], peaks: tuple[int, int]
) -> str:
    """The summary numbers, each in an element with its exact value."""
    usage = totals.usage
    rpm, tpm = _per_minute(usage["requests"], wall), _per_minute(usage["total_tokens"], wall)
    p50, p90, p99 = (_percentile(latencies, p) for p in (50, 90, 99))

    def count(name: str, label: str, value: int) -> str:
        return _metric(name, label, str(value), f"{value:,}")

    def seconds(value: float | None) -> str:
        return "–" if value is None else charts.format_seconds(value)

    def rate(value: float | None) -> str:
        return "–" if value is None else f"{value:,.1f}"

    items = [
        count("tasks", "Tasks", totals.tasks),
        count("done", "Done", totals.done),
        count("failed", "Failed", totals.failed),
        count("retried", "Retried", totals.retried),
        *(count(key, label, usage[key]) for key, label in _USAGE_LABELS.items()),
        _cost_metric(totals),
        _metric("wall_time", "Wall time", _exact(wall), seconds(wall)),
        _metric("requests_per_minute", "Requests / min", _exact(rpm), rate(rpm)),
        _metric("tokens_per_minute", "Tokens / min", _exact(tpm), rate(tpm)),
        count("peak_rpm", "Peak requests in 60 s", peaks[0]),
        count("peak_tpm", "Peak tokens in 60 s", peaks[1]),
        _metric("p50_latency", "Latency p50", _exact(p50), seconds(p50)),
        _metric("p90_latency", "Latency p90", _exact(p90), seconds(p90)),
        _metric("p99_latency", "Latency p99", _exact(p99), seconds(p99)),
    ]
    return f'<dl class="summary">{"".join(items)}</dl>'


def _empty(text: str) -> str:
    return f'<p class="empty">{escape(text)}</p>'


def _throughput(
    buckets: tuple[list[tuple[int, int]], ...], limits: Mapping[str, int | None], span: float
) -> tuple[str, tuple[int, int]]:
    """The two throughput charts (requests and tokens per rolling minute), and their peaks."""
    if not buckets[0]:
        return _empty("No requests were recorded."), (0, 0)
    html, peaks = [], []
    for pairs, key, noun, chart_id in (
        (buckets[0], "rpm", "Requests", "chart-requests"),
        (buckets[1], "tpm", "Tokens", "chart-tokens"),
    ):
        points, peak = _rolling(pairs, span)
        limit = limits.get(key)
        caption = f"{key.upper()} limit {limit:,}" if limit else ""
        label = f"{noun} in the last 60 s (peak {peak:,}{', ' + caption if caption else ''})"
        chart = charts.line_chart(
            chart_id, label, points=points, x_span=span, limit=limit or None, limit_label=caption
        )
        html.append(f"<figure>{chart}<figcaption>{escape(label)}</figcaption></figure>")
        peaks.append(peak)
    return "".join(html), (peaks[0], peaks[1])


def _latency(totals: _Totals, latencies: list[float]) -> str:
    """The latency histogram, done and failed tasks stacked, with p50/p90/p99 marked."""
    if not latencies:
        return _empty("No latencies were recorded.")
    edges = charts.bin_values(latencies)
    series = [
        ("done", charts.count_bins(totals.latency_done, edges), "s0"),
        ("failed", charts.count_bins(totals.latency_failed, edges), "s2"),
    ]
    markers = [(f"p{p}", v) for p in (50, 90, 99) if (v := _percentile(latencies, p)) is not None]
    label = f"Latency of {len(latencies):,} tasks: done in blue, failed in red"
    chart = charts.histogram(
        "chart-latency",
        label,
        edges=edges,
        series=series,
        markers=markers,
        x_format=charts.format_seconds,
    )
    return f"<figure>{chart}<figcaption>{escape(label)}</figcaption></figure>"


def _per_task(totals: _Totals) -> str:
    """Histograms of tokens and cost per task (cost only when some task has a price)."""
    parts = []
    for values, chart_id, noun in (
        (totals.task_tokens, "chart-task-tokens", "Tokens"),
        (totals.task_costs, "chart-task-cost", "Cost"),
    ):
        if not values:
            parts.append(_empty(f"{noun} per task: nothing to show."))
            continue
        edges = charts.bin_values(values)
        label = f"{noun} per task ({len(values):,} tasks)"
        series = [("tasks", charts.count_bins(values, edges), "s1")]
        chart = charts.histogram(chart_id, label, edges=edges, series=series)
        parts.append(f"<figure>{chart}<figcaption>{escape(label)}</figcaption></figure>")
    return "".join(parts)


def _failures(totals: _Totals) -> str:
    """Failures by error type: bars and a table with one example message each."""
    if not totals.failures:
        return _empty("No task failed.")
    ranked = sorted(totals.failures.items(), key=lambda item: (-item[1].count, item[0]))
    bars = [(kind, failure.count) for kind, failure in ranked]
    if len(bars) > _MAX_BARS:  # the table below still lists every type
        rest = bars[_MAX_BARS - 1 :]
        bars[_MAX_BARS - 1 :] = [(f"{len(rest)} other types", sum(n for _, n in rest))]
    chart = charts.hbars("chart-failures", "Failed tasks by error type", bars)
    rows = "".join(
        f'<tr><td data-error-type="{escape(kind)}">{escape(kind)}</td>'
        f'<td class="num" data-count="{f.count}">{f.count:,}</td>'
        f"<td>{escape(shorten(f.task_id, _ID_CHARS))}</td><td>{escape(f.message)}</td></tr>"
        for kind, f in ranked
    )
    return (
        f"<figure>{chart}</figure><table><thead><tr><th>Error type</th><th>Tasks</th>"
        f"<th>Example task</th><th>Example message</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _largest(totals: _Totals, currency: str) -> str:
    rows = "".join(
        f"<tr><td>{escape(shorten(task_id, _ID_CHARS))}</td><td class=num>{tokens:,}</td>"
        f"<td class=num>{escape(cost + ' ' + currency if cost else '–')}</td></tr>"
        for tokens, task_id, cost in totals.largest()
    )
    if not rows:
        return _empty("No tasks.")
    return (
        "<table><thead><tr><th>Task</th><th>Tokens</th><th>Cost</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def _when(epoch: float) -> str:
    try:
        return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat(timespec="seconds")
    except (OverflowError, OSError, ValueError):
        return repr(epoch)


def _page(title: str, body: str) -> str:
    """The whole document around `body`, with a policy that lets it fetch nothing at all."""
    # The policy allows this one script (by its hash) and the inline styles, nothing else:
    # no network fetch, and no injected script could run even if escaping ever failed.
    digest = base64.b64encode(hashlib.sha256(charts.SCRIPT.encode()).digest()).decode()
    policy = f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{digest}'"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{policy}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{charts.STYLE}</style></head>"
        f"<body><main>{body}</main><script>{charts.SCRIPT}</script></body></html>\n"
    )


def render_report(
    results: Iterable[Mapping[str, Any]],
    *,
    timeline: Iterable[Mapping[str, Any]],
    limits: Mapping[str, int | None],
    title: str,
    started_at: float,
    finished_at: float,
) -> str:
    """The report page for a finished (or stopped) batch, as one HTML string.

    Args:
        results: One dict per task, as in the results JSONL file; read once, in one pass.
        timeline: Per-second buckets ``{"t", "requests", "tokens"}`` (``t`` in seconds since
            the batch started); seconds with nothing may be missing.
        limits: ``{"rpm": ..., "tpm": ...}``, each an int or ``None`` for no limit.
        title: The page's title.
        started_at: When the batch started, in epoch seconds.
        finished_at: When it finished, in epoch seconds.
    """
    totals = _Totals()
    for row in results:
        totals.add(row)
    wall = finished_at - started_at if math.isfinite(finished_at - started_at) else None
    buckets = _timeline(timeline)
    last = buckets[0][-1][0] + 1 if buckets[0] else 0
    span = max(wall or 0.0, _float(last) or 0.0, 1.0)
    throughput, peaks = _throughput(buckets, limits, span)
    latencies = sorted([*totals.latency_done, *totals.latency_failed])
    currency = next(iter(totals.costs), "")
    body = (
        f"<h1>{escape(title)}</h1>"
        f'<p class="sub">{escape(_when(started_at))} → {escape(_when(finished_at))}</p>'
        f"{_summary(totals, wall, latencies, peaks)}"
        f"<h2>Throughput against the limits</h2>{throughput}"
        f"<h2>Latency</h2>{_latency(totals, latencies)}"
        f"<h2>Tokens and cost per task</h2>{_per_task(totals)}"
        f"<h2>Failures by type</h2>{_failures(totals)}"
        f"<h2>Largest tasks</h2>{_largest(totals, currency)}"
        f"<footer>sfagent {escape(__version__)}</footer>"
    )
    return _page(title, body)


def write_report(
    path: str | os.PathLike[str],
    results: Iterable[Mapping[str, Any]],
    *,
    timeline: Iterable[Mapping[str, Any]],
    limits: Mapping[str, int | None],
    title: str,
    started_at: float,
    finished_at: float,
) -> Path:
    """Write `render_report`'s page to `path` (whole or not at all) and return the path."""
    page = render_report(
        results,
        timeline=timeline,
        limits=limits,
        title=title,
        started_at=started_at,
        finished_at=finished_at,
    )
    target = Path(path)
    # A reader (a browser refreshing the page) never sees half a file: write, then rename.
    partial = target.with_name(f".{target.name}.partial")
    partial.write_text(page, encoding="utf-8")
    os.replace(partial, target)
    return target
