"""`sfagent pending` and `sfagent approve` as an operator runs them: a durable run parked on an
approval in one process (``tests/durable/durable_child.py``), the commands in others, the run
going on with the answer; and the exit codes and messages of every way they can be refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("dbos", reason="the approval commands need the dbos extra")

from sfagent.cli import main
from sfagent.testing import LoopbackServer, RecordedRequest, Reply, ScriptedToolCall

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parents[2]
CHILD = REPO / "tests" / "durable" / "durable_child.py"


def asks_to_delete(request: RecordedRequest) -> Reply:
    messages = request.json["messages"]
    if messages[-1]["role"] == "user":
        call = ScriptedToolCall("delete_file", {"path": "/tmp/old.log"}, id="del-1")
        return Reply(tool_calls=[call])
    return Reply(text=f"Done: {messages[-1]['content']}")


def sfagent(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sfagent", *args],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class ParkedRun:
    """A durable run in a child process, started and (until it ends) left running."""

    def __init__(self, server: LoopbackServer, db: str, log: Path) -> None:
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, str(CHILD), server.base_url, db, str(log), "run-1", "start", "0",
             "approval"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )  # fmt: skip

    def outcome(self) -> dict[str, Any]:
        stdout, _ = self.process.communicate(timeout=60)
        assert self.process.returncode == 0
        found: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
        return found

    def deleted(self) -> list[str]:
        if not self.log.exists():
            return []
        return [json.loads(line)["path"] for line in self.log.read_text().splitlines()]

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.communicate(timeout=30)


@pytest.fixture
def parked(tmp_path: Path) -> Any:
    db = f"sqlite:///{tmp_path / 'dbos.sqlite'}"
    with LoopbackServer(asks_to_delete) as server:
        run = ParkedRun(server, db, tmp_path / "tools.log")
        try:
            yield run, db
        finally:
            run.stop()


def test_an_approval_from_the_command_line_resumes_the_run(parked: Any) -> None:
    run, db = parked
    shown = sfagent("pending", "run-1", "--database-url", db, "--wait", "30")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == (
        """run 'run-1' waits for an approval of call 'del-1': """
        """delete_file({"path": "/tmp/old.log"})\n"""
    )
    assert not run.deleted()
    answered = sfagent("approve", "run-1", "--call", "del-1", "--by", "ops", "--database-url", db)
    assert answered.returncode == 0, answered.stderr
    assert answered.stdout.startswith("approved call 'del-1' of run 'run-1': delete_file(")
    assert run.outcome() == {"output": "Done: deleted /tmp/old.log", "requests": 2}
    assert run.deleted() == ["/tmp/old.log"]

    again = sfagent("approve", "run-1", "--database-url", db)
    assert again.returncode == 1
    assert again.stderr == (
        "error: run 'run-1' is not waiting for an approval (its status: SUCCESS)\n"
    )
    nothing = sfagent("pending", "run-1", "--json", "--database-url", db)
    assert nothing.returncode == 1
    assert json.loads(nothing.stdout) == {"run_id": "run-1", "pending": None}


def test_a_denial_from_the_command_line_reaches_the_model(parked: Any) -> None:
    run, db = parked
    # The database's address from DBOS's own variable, as a deployment would set it.
    env = {"DBOS_SYSTEM_DATABASE_URL": db}
    shown = sfagent("pending", "run-1", "--json", "--wait", "30", env=env)
    assert json.loads(shown.stdout)["pending"] == {
        "call_id": "del-1",
        "tool": "delete_file",
        "arguments": '{"path": "/tmp/old.log"}',
    }
    wrong = sfagent("approve", "run-1", "--call", "del-9", env=env)
    assert wrong.returncode == 1
    assert "waits for an approval of call 'del-1' (delete_file), not 'del-9'" in wrong.stderr
    denied = sfagent("approve", "run-1", "--deny", "--json", env=env)
    assert denied.returncode == 0, denied.stderr
    assert json.loads(denied.stdout)["denied"]["call_id"] == "del-1"
    outcome = run.outcome()
    assert "did not approve" in outcome["output"]
    assert not run.deleted()


def test_an_unknown_run_id_exits_4(parked: Any, capsys: pytest.CaptureFixture[str]) -> None:
    run, db = parked
    assert main(["pending", "run-1", "--database-url", db, "--wait", "30"]) == 0
    capsys.readouterr()
    assert main(["approve", "run-404", "--database-url", db]) == 4
    assert capsys.readouterr().err == f"error: no durable run 'run-404' in {db}\n"
    assert main(["pending", "run-404", "--database-url", db]) == 4
    assert not run.deleted()


def test_a_missing_database_is_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "none.sqlite"
    assert main(["approve", "run-1", "--database-url", f"sqlite:///{path}"]) == 5
    assert capsys.readouterr().err == (
        f"error: no DBOS system database at {path}: `launch` creates it at a run's start\n"
    )
    assert not path.exists()


def test_an_unreachable_database_exits_5_without_its_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = "postgresql://ops:pw-7f3a9c2e@127.0.0.1:1/runs"
    assert main(["approve", "run-1", "--database-url", url]) == 5
    err = capsys.readouterr().err
    assert err.startswith("error: cannot read DBOS's system database at ")
    assert "postgresql://ops:***@127.0.0.1:1/runs" in err
    assert "pw-7f3a9c2e" not in err


@pytest.mark.parametrize(
    ("args", "told"),
    [
        (["--database-url", "mysql://ops:pw-7f3a9c2e@db/runs"], "mysql://***@db/runs"),
        (["--database-url", "not a url"], "got 'not a url'"),
        (["--wait", "-1"], "must be 0 or more seconds"),
        (["--wait", "soon"], "not a number of seconds"),
    ],
)
def test_bad_arguments_exit_2(
    args: list[str], told: str, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = main(["approve", "run-1", *args])
    except SystemExit as exc:  # argparse's own refusals
        code = int(str(exc.code))
    assert code == 2
    err = capsys.readouterr().err
    assert told in err
    assert "pw-7f3a9c2e" not in err
