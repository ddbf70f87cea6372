"""`sfagent batch --via batch-api`: single-turn tasks through SiliconFlow's batch API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sfagent.cli import main
from sfagent.testing import BatchServer

HERE = Path(__file__).parent
AGENT = str(HERE / "plain_agent.py")


def tasks_file(tmp_path: Path, n: int) -> Path:
    path = tmp_path / "tasks.jsonl"
    rows = (json.dumps({"id": f"q{i}", "question": f"What is {i} + {i}?"}) for i in range(n))
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def args(server: BatchServer, tasks: Path, out: Path, *extra: str) -> list[str]:
    return [
        "batch", str(tasks), "--agent", AGENT, "--out", str(out),
        "--template", "{question}", "--via", "batch-api", "--poll-interval", "0.001",
        "--base-url", server.base_url, "--no-progress", *extra,
    ]  # fmt: skip


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SILICONFLOW_API_KEY", "sk-test")


@pytest.mark.usefixtures("key")
def test_tasks_go_as_one_batch_and_come_back_as_records(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results.jsonl"
    with BatchServer() as server:
        assert main(args(server, tasks_file(tmp_path, 5), out)) == 0
        assert len(server.created) == 1
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert sorted(r["id"] for r in records) == [f"q{i}" for i in range(5)]
    assert {r["output"] for r in records} == {f"Answer to: What is {i} + {i}?" for i in range(5)}
    assert "5 done, 0 failed" in capsys.readouterr().err


@pytest.mark.usefixtures("key")
def test_a_resumed_batch_submits_nothing_again(tmp_path: Path) -> None:
    out, tasks = tmp_path / "results.jsonl", tasks_file(tmp_path, 3)
    with BatchServer() as server:
        assert main(args(server, tasks, out)) == 0
        first = out.read_text(encoding="utf-8")
        assert main(args(server, tasks, out, "--resume")) == 0
        assert len(server.created) == 1
        assert len(server.uploads) == 1
    assert sorted(out.read_text(encoding="utf-8").splitlines()) == sorted(first.splitlines())


def test_the_batch_api_needs_a_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SILICONFLOW_API_KEY", raising=False)
    with BatchServer() as server:
        assert main(args(server, tasks_file(tmp_path, 1), tmp_path / "o.jsonl")) == 2
    assert "needs SILICONFLOW_API_KEY" in capsys.readouterr().err


@pytest.mark.usefixtures("key")
def test_rate_limits_do_not_apply_to_the_batch_queue(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with BatchServer() as server:
        code = main(args(server, tasks_file(tmp_path, 1), tmp_path / "o.jsonl", "--rpm", "10"))
    assert code == 2
    assert "drop --rpm" in capsys.readouterr().err
