"""`sfagent batch --engine dbos` and `sfagent worker`: the options that do not go together
are refused with a usage error, an unreachable database exits 5 without its password, and the
agent's name on the queue is the same wherever its file lives. (A whole batch over two worker
processes and PostgreSQL: tests/durable/test_durable_batch_workers.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("dbos", reason="the distributed batch needs the dbos extra")

from sfagent.cli import main
from sfagent.cli._distributed import agent_name_for

REPO = Path(__file__).resolve().parents[2]
AGENT = str(REPO / "examples" / "weather.py")
TASKS = str(REPO / "examples" / "data" / "weather_tasks.jsonl")
UNREACHABLE = "postgresql://ops:pw-7f3a9c2e@127.0.0.1:1/runs"


def batch(tmp_path: Path, *args: str) -> list[str]:
    return ["batch", TASKS, "--agent", AGENT, "--out", str(tmp_path / "out.jsonl"), *args]


@pytest.mark.parametrize(
    ("args", "told"),
    [
        (["--engine", "dbos", "--journal", "j.sqlite"], "--journal and --force do not apply"),
        (["--engine", "dbos", "--via", "batch-api"], "cannot go --via batch-api"),
        (["--database-url", "sqlite:///x.sqlite"], "go with --engine dbos"),
        (["--job", "nightly"], "go with --engine dbos"),
        (["--name", "weather"], "go with --engine dbos"),
    ],
)
def test_options_that_do_not_go_together_exit_2(
    tmp_path: Path, args: list[str], told: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*batch(tmp_path, *args), "--offline"]) == 2
    assert told in capsys.readouterr().err
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.parametrize("command", ["batch", "worker"])
def test_an_unreachable_database_exits_5_without_its_password(
    tmp_path: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if command == "batch":
        args = batch(tmp_path, "--engine", "dbos", "--database-url", UNREACHABLE)
    else:
        args = ["worker", "--agent", AGENT, "--database-url", UNREACHABLE]
    assert main([*args, "--offline"]) == 5
    err = capsys.readouterr().err
    assert "cannot reach DBOS's system database at postgresql://ops:***@127.0.0.1:1/runs" in err
    assert "pw-7f3a9c2e" not in err


def test_a_database_url_that_is_not_one_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "mysql://ops:pw-7f3a9c2e@db/runs"
    assert main(["worker", "--agent", AGENT, "--database-url", url, "--offline"]) == 2
    err = capsys.readouterr().err
    assert "mysql://***@db/runs" in err
    assert "pw-7f3a9c2e" not in err


@pytest.mark.parametrize(
    ("target", "name"),
    [
        ("examples/weather.py", "weather"),
        ("/srv/agents/weather.py:agent", "weather:agent"),
        ("mypkg.agents", "agents"),
        ("mypkg.agents:planner", "agents:planner"),
    ],
)
def test_the_agent_goes_by_its_file_name_wherever_it_lives(target: str, name: str) -> None:
    assert agent_name_for(target) == name
