"""The report page: numbers read back equal totals computed here, escaping, edge cases, size."""

from __future__ import annotations

import base64
import hashlib
import math
import random
import re
from collections.abc import Iterator
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from sfagent.batch.report import render_report, write_report

T0 = 1_700_000_000.0
LIMITS = {"rpm": 1000, "tpm": 400_000}
CHARTS = {
    "chart-requests",
    "chart-tokens",
    "chart-latency",
    "chart-task-tokens",
    "chart-task-cost",
    "chart-failures",
}


class _Page(HTMLParser):
    """The facts a test reads from a page: metrics, chart ids, scripts, the body's data."""

    def __init__(self) -> None:
        super().__init__()
        self.metrics: dict[str, str] = {}
        self.charts: list[str] = []
        self.scripts: list[str] = []
        self.body: dict[str, str] = {}
        self.policy = ""
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {key: value or "" for key, value in attrs}
        if "data-metric" in found:
            self.metrics[found["data-metric"]] = found.get("data-value", "")
        if tag == "svg":
            self.charts.append(found.get("id", ""))
        if tag == "body":
            self.body = found
        if tag == "meta" and found.get("http-equiv") == "Content-Security-Policy":
            self.policy = found["content"]
        self._in_script = tag == "script"
        if self._in_script:
            self.scripts.append("")

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts[-1] += data


def parse(page: str) -> _Page:
    """The page's facts (also used on the DOM a browser dumps)."""
    parser = _Page()
    parser.feed(page)
    parser.close()
    return parser


def make_results(n: int, *, seed: int = 7, failed_share: float = 0.1) -> list[dict[str, Any]]:
    """`n` result rows as the runner writes them, with transcripts and outputs to keep out."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        start = T0 + rng.uniform(0, 300)
        latency = rng.lognormvariate(0.3, 0.7)
        failed = rng.random() < failed_share
        prompt, completion = rng.randint(50, 4000), rng.randint(1, 800)
        rows.append(
            {
                "id": f"task-{i}",
                "status": "failed" if failed else "done",
                "output": None if failed else f"OUTPUT-TEXT-{i}",
                "error_type": rng.choice(["RateLimitError", "ToolError"]) if failed else None,
                "error_message": f"failure number {i}" if failed else None,
                "turns": rng.randint(1, 4),
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                    "requests": rng.randint(1, 4),
                    "tool_calls": rng.randint(0, 3),
                },
                "cost": str(Decimal(prompt * 2 + completion * 8) / Decimal(1_000_000)),
                "currency": "CNY",
                "latency": latency,
                "started_at": start,
                "finished_at": start + latency,
                "attempt": rng.choice([1, 1, 1, 2]),
                "transcript": [{"role": "user", "content": f"TRANSCRIPT-SECRET-{i}"}],
            }
        )
    return rows


def make_timeline(n: int, *, seed: int = 7) -> list[dict[str, int]]:
    """Per-second buckets over `n` seconds, some seconds missing."""
    rng = random.Random(seed)
    return [
        {"t": t, "requests": rng.randint(0, 20), "tokens": rng.randint(0, 6000)}
        for t in range(n)
        if rng.random() < 0.8
    ]


def render(results: Any, timeline: Any = (), **overrides: Any) -> str:
    options: dict[str, Any] = {
        "timeline": timeline,
        "limits": LIMITS,
        "title": "A batch",
        "started_at": T0,
        "finished_at": T0 + 310.5,
    }
    options.update(overrides)
    return render_report(results, **options)


def nearest_rank(values: list[float], p: int) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(p * len(ordered) / 100) - 1]


def peak_window(timeline: list[dict[str, int]], key: str) -> int:
    """The most `key` in any 60 whole seconds, by brute force over every window's end."""
    per_second: dict[int, int] = {}
    for bucket in timeline:
        per_second[bucket["t"]] = per_second.get(bucket["t"], 0) + bucket[key]
    ends = range(max(per_second, default=0) + 1)
    return max((sum(per_second.get(s, 0) for s in range(e - 59, e + 1)) for e in ends), default=0)


def expected_metrics(
    rows: list[dict[str, Any]], wall: float, timeline: list[dict[str, int]]
) -> dict[str, str]:
    """The summary as this test computes it, independently of the module."""
    total = sum(r["usage"]["total_tokens"] for r in rows)
    requests = sum(r["usage"]["requests"] for r in rows)
    latencies = [r["latency"] for r in rows]
    return {
        "tasks": str(len(rows)),
        "done": str(sum(r["status"] == "done" for r in rows)),
        "failed": str(sum(r["status"] == "failed" for r in rows)),
        "retried": str(sum(r["attempt"] > 1 for r in rows)),
        "total_tokens": str(total),
        "prompt_tokens": str(sum(r["usage"]["prompt_tokens"] for r in rows)),
        "completion_tokens": str(sum(r["usage"]["completion_tokens"] for r in rows)),
        "requests": str(requests),
        "tool_calls": str(sum(r["usage"]["tool_calls"] for r in rows)),
        "total_cost": str(sum(Decimal(r["cost"]) for r in rows)),
        "currency": "CNY",
        "wall_time": repr(wall),
        "requests_per_minute": repr(requests * 60 / wall),
        "tokens_per_minute": repr(total * 60 / wall),
        "peak_rpm": str(peak_window(timeline, "requests")),
        "peak_tpm": str(peak_window(timeline, "tokens")),
        "p50_latency": repr(nearest_rank(latencies, 50)),
        "p90_latency": repr(nearest_rank(latencies, 90)),
        "p99_latency": repr(nearest_rank(latencies, 99)),
    }


# --- the numbers --------------------------------------------------------------------------------


def test_metrics_match_totals_computed_independently() -> None:
    rows = make_results(500)
    timeline = make_timeline(320)
    page = parse(render(rows, timeline))
    assert page.metrics == expected_metrics(rows, 310.5, timeline)
    assert set(page.charts) == CHARTS


def test_results_are_read_in_one_pass_from_a_generator() -> None:
    rows = make_results(50)
    consumed = 0

    def stream() -> Iterator[dict[str, Any]]:
        nonlocal consumed
        for row in rows:
            consumed += 1
            yield row

    page = parse(render(stream(), make_timeline(60)))
    assert consumed == 50
    assert page.metrics["tasks"] == "50"


def test_the_peak_window_is_found_between_sampled_points() -> None:
    # Two bursts 59 s apart share one window; the chart samples must not smooth them away.
    timeline = [{"t": 100, "requests": 7, "tokens": 70}, {"t": 159, "requests": 5, "tokens": 50}]
    page = parse(render(make_results(3), timeline, finished_at=T0 + 5000))
    assert page.metrics["peak_rpm"] == "12"
    assert page.metrics["peak_tpm"] == "120"


def test_percentiles_are_nearest_rank() -> None:
    rows = make_results(10)
    for i, row in enumerate(rows):
        row["latency"] = float(10 - i)  # 10.0 down to 1.0
    page = parse(render(rows))
    assert page.metrics["p50_latency"] == "5.0"
    assert page.metrics["p90_latency"] == "9.0"
    assert page.metrics["p99_latency"] == "10.0"


# --- escaping and what stays out -----------------------------------------------------------------


def test_ids_messages_types_and_title_are_escaped() -> None:
    rows = make_results(4, failed_share=1.0)
    rows[0]["id"] = "<script>alert('id')</script>"
    rows[0]["error_type"] = '<img src=x onerror="alert(1)">'
    rows[0]["error_message"] = "</td><script>alert('msg')</script>"
    rows[1]["error_type"] = rows[0]["error_type"]
    html = render(rows, title="</title><script>alert('title')</script>")
    assert "<script>alert" not in html
    assert "<img" not in html
    assert "&lt;script&gt;alert(&#x27;msg&#x27;)&lt;/script&gt;" in html
    assert "&lt;script&gt;alert(&#x27;id&#x27;)&lt;/script&gt;" in html
    assert "&lt;/title&gt;&lt;script&gt;alert(&#x27;title&#x27;)" in html
    assert html.count("<script") == 1


def test_outputs_and_transcripts_never_enter_the_page() -> None:
    rows = make_results(30)
    html = render(rows, make_timeline(60))
    assert "TRANSCRIPT-SECRET" not in html
    assert "OUTPUT-TEXT" not in html


def test_the_page_references_nothing_outside_itself() -> None:
    html = render(make_results(30, failed_share=0.5), make_timeline(60))
    for reference in ("http://", "https://", "src=", "href=", "url(", "@import", "//cdn"):
        assert reference not in html
    page = parse(html)
    assert page.policy.startswith("default-src 'none';")


def test_the_policy_allows_exactly_the_page_script() -> None:
    page = parse(render(make_results(5)))
    (script,) = page.scripts
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in page.policy


def test_long_messages_are_cut_and_one_example_is_kept_per_type() -> None:
    rows = make_results(6, failed_share=1.0)
    for row in rows:
        row["error_type"] = "ToolError"
    rows[0]["error_message"] = "x" * 10_000
    html = render(rows)
    assert "x" * 300 not in html
    assert html.count('data-error-type="ToolError"') == 1
    assert 'data-count="6"' in html


# --- edge cases ----------------------------------------------------------------------------------


def test_zero_tasks() -> None:
    page = parse(render([], [], started_at=T0, finished_at=T0))
    assert page.metrics["tasks"] == "0"
    assert page.metrics["total_cost"] == ""
    assert page.metrics["p50_latency"] == ""
    assert page.metrics["requests_per_minute"] == ""  # no time passed: no rate
    assert page.charts == []


def test_all_failed() -> None:
    rows = make_results(20, failed_share=1.0)
    page = parse(render(rows, make_timeline(30)))
    assert page.metrics["done"] == "0"
    assert page.metrics["failed"] == "20"
    assert "chart-failures" in page.charts


def test_no_failures_draws_no_failure_chart() -> None:
    page = parse(render(make_results(20, failed_share=0.0), make_timeline(30)))
    assert "chart-failures" not in page.charts


@pytest.mark.parametrize("limits", [{"rpm": None, "tpm": None}, {}])
def test_no_limits_draws_no_limit_line(limits: dict[str, int | None]) -> None:
    html = render(make_results(20), make_timeline(30), limits=limits)
    assert 'class="limit"' not in html
    assert {"chart-requests", "chart-tokens"} <= set(parse(html).charts)


def test_limits_draw_their_lines() -> None:
    html = render(make_results(20), make_timeline(30))
    assert html.count('class="limit"') == 2
    assert "RPM limit 1,000" in html


def test_no_prices() -> None:
    rows = make_results(10)
    for row in rows:
        row["cost"] = None
    page = parse(render(rows))
    assert page.metrics["total_cost"] == ""
    assert "chart-task-cost" not in page.charts


def test_some_prices_missing_counts_the_priced_ones() -> None:
    rows = make_results(10)
    rows[0]["cost"] = None
    html = render(rows)
    assert parse(html).metrics["total_cost"] == str(sum(Decimal(r["cost"]) for r in rows[1:]))
    assert "1 of 10 tasks unpriced" in html


def test_currencies_are_never_added_together() -> None:
    rows = make_results(2)
    rows[1]["currency"] = "USD"
    html = render(rows)
    assert parse(html).metrics["total_cost"] == ""
    assert f"{Decimal(rows[0]['cost']):f} CNY" in html
    assert f"{Decimal(rows[1]['cost']):f} USD" in html


def test_one_task() -> None:
    rows = make_results(1, failed_share=0.0)
    timeline = [{"t": 0, "requests": 1, "tokens": 10}]
    finished = T0 + rows[0]["latency"]
    page = parse(render(rows, timeline, finished_at=finished))
    assert page.metrics == expected_metrics(rows, finished - T0, timeline)


def test_huge_numbers() -> None:
    rows = make_results(3, failed_share=0.0)
    for row in rows:
        row["usage"] = dict.fromkeys(
            ("prompt_tokens", "completion_tokens", "total_tokens", "requests", "tool_calls"),
            10**19,
        )
        row["cost"] = "123456789012345.123456"
        row["latency"] = 1e9
    timeline = [{"t": 10**6, "requests": 10**18, "tokens": 10**20}]
    page = parse(render(rows, timeline, finished_at=T0 + 10**6 + 1))
    assert page.metrics["total_tokens"] == str(3 * 10**19)
    assert page.metrics["total_cost"] == "370370367037035.370368"
    assert page.metrics["peak_tpm"] == str(10**20)
    assert page.metrics["p99_latency"] == "1000000000.0"


def test_numbers_beyond_a_float_do_not_break_the_page() -> None:
    rows = make_results(2, failed_share=0.0)
    rows[0]["usage"]["total_tokens"] = 10**400
    rows[0]["cost"] = "1e400"
    rows[1]["latency"] = 10**400
    timeline = [{"t": 1, "requests": 1, "tokens": 10**400}, {"t": 10**400, "requests": 1}]
    page = parse(render(rows, timeline, finished_at=float("nan")))
    assert page.metrics["total_tokens"] == str(10**400 + rows[1]["usage"]["total_tokens"])
    assert page.metrics["tokens_per_minute"] == ""  # no float holds it
    assert page.metrics["peak_tpm"] == str(10**400)
    assert page.metrics["p50_latency"] == repr(rows[0]["latency"])


def test_a_clock_running_backwards_gives_no_rates() -> None:
    page = parse(render(make_results(3), finished_at=T0 - 5))
    assert page.metrics["wall_time"] == "-5.0"
    assert page.metrics["requests_per_minute"] == ""


def test_many_error_types_fold_into_one_bar_but_all_are_listed() -> None:
    rows = make_results(40, failed_share=1.0)
    for i, row in enumerate(rows):
        row["error_type"] = f"Error{i:02d}"
    html = render(rows)
    assert html.count('data-error-type="') == 40
    assert "26 other types" in html
    bars = re.search(r'<svg[^>]*id="chart-failures".*?</svg>', html)
    assert bars is not None
    assert bars.group().count("<rect") == 15


def test_odd_rows_do_not_break_the_page() -> None:
    rows: list[dict[str, Any]] = [
        {"id": "bare"},
        {"id": 5, "status": "failed", "usage": None, "cost": "not money", "latency": None},
        {"id": "nan", "status": "done", "latency": float("nan"), "cost": "NaN", "attempt": True},
    ]
    page = parse(render(rows, [{"t": "x"}], finished_at=float("inf")))
    assert page.metrics["tasks"] == "3"
    assert page.metrics["failed"] == "1"
    assert page.metrics["total_cost"] == ""
    assert page.metrics["p50_latency"] == ""


# --- size and the file ---------------------------------------------------------------------------


def test_ten_thousand_tasks_stay_small() -> None:
    rows = make_results(10_000, failed_share=0.2)
    big = "T" * 100_000  # a large transcript, shared: the page must not carry it
    for row in rows:
        row["transcript"] = big
    html = render(rows, make_timeline(3600), finished_at=T0 + 3600)
    assert len(html.encode()) < 2_000_000
    assert big[:1000] not in html
    assert parse(html).metrics["tasks"] == "10000"


def test_write_report_writes_the_page_whole(tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    rows = make_results(20)
    written = write_report(
        target,
        rows,
        timeline=make_timeline(30),
        limits=LIMITS,
        title="t",
        started_at=T0,
        finished_at=T0 + 30,
    )
    assert written == target
    html = target.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    assert re.search(r"data-metric=\"tasks\" data-value=\"20\"", html)
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]
