"""The report in a real headless browser (Debian's ``chromium``): it renders, its charts are
laid out and drawn, and the numbers on the page are the results file's.

Run with ``pytest -m integration tests/batch/test_report_browser.py``; a plain ``pytest`` skips
it at once, like the other real-program tests. Selected, it skips when chromium is missing
(``apt-get install chromium``), or fails when ``SFAGENT_REQUIRE_INTEGRATION=1`` (CI), so a
missing browser cannot pass as a green run. The browser runs offline on a ``file://`` URL
with its own profile directory, bounded by a timeout.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sfagent.batch.report import write_report
from tests.batch.test_report import (
    CHARTS,
    LIMITS,
    T0,
    expected_metrics,
    make_results,
    make_timeline,
    parse,
)

pytestmark = pytest.mark.integration

BROWSER_TIMEOUT = 60.0
"""Seconds one chromium run may take (it takes about one)."""

_FLAGS = (
    "--headless",
    "--no-sandbox",  # root in a container has no user namespace for the sandbox
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


@pytest.fixture(autouse=True)
def _selected(request: pytest.FixtureRequest) -> None:
    """Skip unless the run selected ``-m integration`` (tests/integration's rule, here too)."""
    expression = request.config.getoption("markexpr", "") or ""
    if re.search(r"(?<!not )\bintegration\b", expression) is None:
        pytest.skip("real-browser test: run with `pytest -m integration`")


@pytest.fixture
def chromium() -> str:
    """The chromium executable, or a skip (a failure under SFAGENT_REQUIRE_INTEGRATION=1)."""
    found = shutil.which("chromium") or (
        "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None
    )
    if found is None:
        reason = "chromium is not installed (Debian: apt-get install chromium)"
        if os.environ.get("SFAGENT_REQUIRE_INTEGRATION") == "1":
            pytest.fail(f"SFAGENT_REQUIRE_INTEGRATION=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    return found


def run_browser(chromium: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """One headless chromium run with a fresh profile, its output captured."""
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    return subprocess.run(
        [chromium, *_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=BROWSER_TIMEOUT,
        check=False,
        cwd=tmp_path,
        env={**os.environ, "HOME": str(tmp_path)},
    )


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """The results file's rows, one at a time, as the runner streams them into the report."""
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


@pytest.fixture
def report(tmp_path: Path) -> tuple[Path, Path, list[dict[str, int]]]:
    """A results JSONL file, its timeline, and the report written from the file."""
    rows = make_results(400, failed_share=0.15)
    rows[3]["id"] = "<script>document.body.dataset.injected = 'yes'</script>"
    rows[4]["status"], rows[4]["error_type"] = "failed", "<b>Odd</b>Error"
    rows[4]["error_message"] = "<script>document.title = 'pwned'</script>"
    results = tmp_path / "results.jsonl"
    results.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    timeline = make_timeline(320)
    page = write_report(
        tmp_path / "report.html",
        read_jsonl(results),
        timeline=timeline,
        limits=LIMITS,
        title="Browser check",
        started_at=T0,
        finished_at=T0 + 320.25,
    )
    return results, page, timeline


def test_the_page_renders_draws_its_charts_and_shows_the_file_numbers(
    chromium: str, tmp_path: Path, report: tuple[Path, Path, list[dict[str, int]]]
) -> None:
    results, page, timeline = report
    done = run_browser(chromium, tmp_path, "--dump-dom", page.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    dom = parse(done.stdout)
    assert "data-rendered" in dom.body, f"the page's script did not run: {done.stderr[-2000:]}"
    charts = json.loads(dom.body["data-rendered"])["charts"]
    assert {chart["id"] for chart in charts} == CHARTS
    for chart in charts:
        assert chart["width"] > 0, chart
        assert chart["height"] > 0, chart
        assert chart["marks"] > 0, chart
    assert dom.metrics == expected_metrics(list(read_jsonl(results)), 320.25, timeline)
    # Escaped text stays text: the injected scripts never ran.
    assert "data-injected" not in dom.body
    assert "<title>Browser check</title>" in done.stdout


def test_the_page_screenshots(
    chromium: str, tmp_path: Path, report: tuple[Path, Path, list[dict[str, int]]]
) -> None:
    _, page, _ = report
    shot = tmp_path / "report.png"
    done = run_browser(
        chromium, tmp_path, f"--screenshot={shot}", "--window-size=1100,2400", page.as_uri()
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.is_file(), done.stderr[-2000:]
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 30_000  # a blank 1100x2400 page compresses to a few kB
