"""A throwaway PostgreSQL cluster: ``initdb`` into a temporary folder, served on a free loopback
port, stopped and deleted at the end. Shared by the durable tests (``conftest.py``) and the
durable benchmark (``benchmarks/bench_durable.py`` loads this file by path).

Postgres refuses to run as root, so as root the cluster belongs to an unprivileged user (Debian's
``postgres`` when the package made one, else ``nobody``) and every server command runs as it.
Connections go over TCP with a random password, so the URLs handed out look like a real
deployment's and the code that prints them must keep the password out of sight.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["PostgresCluster", "PostgresUnavailable", "find_bin_dir"]

SUPERUSER = "postgres"
START_ATTEMPTS = 3
"""Tries with a new port each: another program may take the free port before the server binds."""

FAST = ("-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
"""Settings for a cluster whose data may be lost (tests): no waits on the disk."""


class PostgresUnavailable(Exception):
    """No PostgreSQL server can be started here (why is the message)."""


def find_bin_dir() -> Path | None:
    """The folder holding ``initdb``, ``pg_ctl`` and ``postgres``, or ``None``."""
    candidates: list[Path] = []
    found = shutil.which("initdb")
    if found:
        candidates.append(Path(found).resolve().parent)
    # Debian keeps the server programs off PATH, one folder per major version: newest first.
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += sorted(
        (Path(v) for v in versions), key=lambda p: _major(p.parent.name), reverse=True
    )
    candidates.append(Path("/usr/local/bin"))
    for folder in candidates:
        if all((folder / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            return folder
    return None


def _major(name: str) -> int:
    return int(name) if name.isdigit() else -1


@dataclass
class PostgresCluster:
    """A running throwaway cluster (see the module)."""

    root: Path
    bin_dir: Path
    port: int
    password: str
    owner: pwd.struct_passwd | None
    watchdog: subprocess.Popen[bytes] | None = None

    @classmethod
    def start(cls, *, fast: bool = True) -> PostgresCluster:
        """Create and start a cluster.

        Args:
            fast: Trade crash safety for speed (``fsync=off``): for tests; a benchmark that
                measures what a deployment pays passes ``False``.

        Raises:
            PostgresUnavailable: No server programs, or the server did not start.
        """
        bin_dir = find_bin_dir()
        if bin_dir is None:
            raise PostgresUnavailable(
                "no PostgreSQL server programs (initdb, pg_ctl, postgres) on PATH, in "
                "/usr/lib/postgresql/*/bin or /usr/local/bin: apt-get install postgresql"
            )
        owner = _unprivileged_user() if os.geteuid() == 0 else None
        root = Path(tempfile.mkdtemp(prefix="sfagent-pg-"))
        cluster = cls(root, bin_dir, 0, secrets.token_hex(16), owner)
        try:
            cluster._init()
            cluster._serve(fast)
            cluster._watch()
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def url(self, database: str = SUPERUSER) -> str:
        """A ``postgresql://`` URL of `database` on this cluster (password included)."""
        return f"postgresql://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database (default: a fresh name) and return its URL."""
        import psycopg
        from psycopg import sql

        name = name or f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True, connect_timeout=10) as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def stop(self) -> None:
        """Stop the server (at once: the data is thrown away) and delete the folder."""
        if self.watchdog is not None:
            self.watchdog.kill()
            self.watchdog.wait(timeout=30)
            self.watchdog = None
        try:
            if (self.root / "data" / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", "data", "-m", "immediate", "-w", "stop", check=False)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    # --- the steps ------------------------------------------------------------------------

    def _init(self) -> None:
        if self.owner is not None:
            os.chown(self.root, self.owner.pw_uid, self.owner.pw_gid)
        password_file = self.root / "password"
        password_file.write_text(self.password + "\n")
        password_file.chmod(0o600)
        if self.owner is not None:
            os.chown(password_file, self.owner.pw_uid, self.owner.pw_gid)
        self._run(
            "initdb", "-D", "data", "-U", SUPERUSER, "-E", "UTF8", "--no-locale",
            "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={password_file}",
            "--no-sync", "--no-instructions",
        )  # fmt: skip
        password_file.unlink()

    def _serve(self, fast: bool) -> None:
        for attempt in range(START_ATTEMPTS):
            self.port = _free_port()
            options = [
                "-c", "listen_addresses=127.0.0.1", "-c", f"port={self.port}",
                "-c", f"unix_socket_directories={self.root}", "-c", "max_connections=200",
                *(FAST if fast else ()),
            ]  # fmt: skip
            log = self.root / f"server-{attempt}.log"
            done = self._run(
                "pg_ctl", "-D", "data", "-l", str(log), "-w", "-t", "60",
                "-o", shlex.join(options), "start", check=False,
            )  # fmt: skip
            if done.returncode == 0:
                return
            told = log.read_text(errors="replace") if log.exists() else done.stdout
            if "could not bind" not in told and "already in use" not in told:
                raise PostgresUnavailable(f"PostgreSQL did not start: {_last_lines(told)}")
        raise PostgresUnavailable(f"PostgreSQL found no free port in {START_ATTEMPTS} tries")

    def _watch(self) -> None:
        """A process that stops the cluster if this one dies without doing it (a test run
        killed by its timeout): the server would otherwise outlive it, holding a port."""
        owner = "" if self.owner is None else self.owner.pw_name
        self.watchdog = subprocess.Popen(
            [sys.executable, __file__, "--watch", str(os.getpid()), str(self.root),
             str(self.bin_dir), owner],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # not killed with this process's group
        )  # fmt: skip

    def _run(
        self, program: str, *args: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        extra: dict[str, Any] = {}
        if self.owner is not None:
            extra = {"user": self.owner.pw_uid, "group": self.owner.pw_gid, "extra_groups": []}
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C"}
        try:
            done = subprocess.run(
                [str(self.bin_dir / program), *args],
                cwd=self.root,
                env={**env, "HOME": str(self.root)},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=120,
                check=False,
                **extra,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PostgresUnavailable(f"{program} could not run: {exc}") from None
        if check and done.returncode != 0:
            raise PostgresUnavailable(f"{program} failed: {_last_lines(done.stdout)}")
        return done


def _unprivileged_user() -> pwd.struct_passwd:
    users = {user.pw_name: user for user in pwd.getpwall()}
    for name in ("postgres", "nobody"):
        if name in users:
            return users[name]
    raise PostgresUnavailable(
        "running as root, and neither a 'postgres' nor a 'nobody' user exists to run "
        "PostgreSQL as (it refuses to run as root)"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _last_lines(text: str, count: int = 5) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return re.sub(r"\s+", " ", " | ".join(lines[-count:])) or "(no output)"


def _watch(parent: int, root: str, bin_dir: str, owner: str) -> None:
    """Wait (at most a day) for `parent` to end, then stop its cluster if it is still there."""
    deadline = time.monotonic() + 24 * 3600
    while time.monotonic() < deadline:
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            break
        time.sleep(1.0)
    user = pwd.getpwnam(owner) if owner else None
    PostgresCluster(Path(root), Path(bin_dir), 0, "", user).stop()


if __name__ == "__main__" and sys.argv[1:2] == ["--watch"]:
    _watch(int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5])
