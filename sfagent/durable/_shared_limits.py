"""`SharedRateLimiter`: RPM and TPM (and RPD, TPD) kept across processes and machines through a
database, for a batch whose workers run on many machines.

DBOS's queue limiter counts workflow starts, not tokens, so the limits are kept here, in tables
of their own (``sfagent_rate_*``) in the database the workers share: SQLite on one machine,
PostgreSQL across machines. It keeps the books `sfagent.batch.RateLimiter` keeps in memory:

- Every admitted request is a row (its time and tokens). A request is admitted only if it fits
  beside the rows of the last ``period + margin`` seconds, so **in every window of that length
  the requests and the tokens charged stay at or under the limits**, summed over every process.
  Settling replaces a row's estimate with the real usage; releasing deletes it.
- A bucket row (one per limit name) holds the GCRA pacer's theoretical arrival times, so
  requests go in a burst of `RateLimits.burst` seconds' worth and then at the limits' pace, and
  the pause and rate cut a 429 causes, so a 429 in one process slows them all.
- Each decision is one transaction that first locks the bucket's row (``SELECT ... FOR UPDATE``
  on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite): admissions on one bucket are serialized. Time
  is the database's clock on PostgreSQL (``clock_timestamp()``), so machines whose clocks
  disagree still agree on the windows; SQLite is on one machine and uses its clock.
- A waiting request works out when it could fit and sleeps until then (at most `RECHECK`
  seconds, since other processes settle below their estimates), then asks again. One task per
  process and event loop asks at a time; across processes there is no queue, so a large request
  may wait while smaller ones from other processes go first.
- `RateLimits.max_concurrency` holds per process (and event loop), not across them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import sqlalchemy as sa

from sfagent._secret import Secret
from sfagent.batch._limiter import (
    DAY,
    WINDOW,
    LimiterCore,
    LimiterStats,
    RateLimits,
    SlotRequest,
    check_settlement,
)
from sfagent.durable._approval import SystemDatabaseError, parsed_url
from sfagent.durable._shared_books import (
    Books,
    Bucket,
    Excess,
    Rules,
    after_429,
    paced,
    plan,
)
from sfagent.exceptions import ConfigurationError, UserError

__all__ = ["RECHECK", "SharedRateLimiter", "SharedReservation"]

logger = logging.getLogger("sfagent")

RECHECK = 1.0
"""A waiting request asks the database again at least this often, in seconds: other processes
settle below their estimates and free room no wait worked out earlier could foresee."""

BUSY_TIMEOUT = 30.0
"""Seconds a SQLite transaction waits for another process's to end before failing."""

CONNECT_TIMEOUT = 10
"""Seconds to wait for a PostgreSQL connection before the database counts as unreachable."""

_EPSILON = 1e-9
"""A wait this short is none: sums of many small paces drift by rounding."""

BUCKETS, REQUESTS, DAYS = "sfagent_rate_buckets", "sfagent_rate_requests", "sfagent_rate_days"

_SCHEMA = (
    f"CREATE TABLE IF NOT EXISTS {BUCKETS} (bucket VARCHAR(500) PRIMARY KEY,"
    " requests_at DOUBLE PRECISION NOT NULL DEFAULT 0,"
    " tokens_at DOUBLE PRECISION NOT NULL DEFAULT 0,"
    " paused_until DOUBLE PRECISION NOT NULL DEFAULT 0,"
    " rate_floor DOUBLE PRECISION NOT NULL DEFAULT 1,"
    " recover_from DOUBLE PRECISION NOT NULL DEFAULT 0,"
    " last_cut DOUBLE PRECISION NOT NULL DEFAULT 0,"
    " streak INTEGER NOT NULL DEFAULT 0)",
    f"CREATE TABLE IF NOT EXISTS {REQUESTS} (id VARCHAR(32) PRIMARY KEY,"
    " bucket VARCHAR(500) NOT NULL, sent_at DOUBLE PRECISION NOT NULL, tokens BIGINT NOT NULL)",
    f"CREATE INDEX IF NOT EXISTS {REQUESTS}_window ON {REQUESTS} (bucket, sent_at)",
    f"CREATE TABLE IF NOT EXISTS {DAYS} (bucket VARCHAR(500) NOT NULL, minute BIGINT NOT NULL,"
    " requests BIGINT NOT NULL, tokens BIGINT NOT NULL, PRIMARY KEY (bucket, minute))",
)
_COLUMNS = "requests_at, tokens_at, paused_until, rate_floor, recover_from, last_cut, streak"

# --- the public face -------------------------------------------------------------------------


class SharedReservation:
    """One request's row in the shared books, from its admission until it is answered.

    Attributes:
        id: The row's key.
        estimate: Tokens reserved when it was admitted.
        tokens: Tokens it is charged now: the estimate until settled, then the real usage.
        sent_at: When it was admitted, in seconds since the epoch on the database's clock.
        state: ``"open"`` (in flight), ``"done"`` (answered or failed: it still counts) or
            ``"released"`` (never sent: refunded).
    """

    __slots__ = ("_owner", "_slots", "estimate", "id", "sent_at", "state", "tokens")

    def __init__(self, owner: SharedRateLimiter, estimate: int, sent_at: float) -> None:
        self._owner = owner
        self._slots: asyncio.Semaphore | None = None
        self.id = uuid.uuid4().hex
        self.estimate = estimate
        self.tokens = estimate
        self.sent_at = sent_at
        self.state: Literal["open", "done", "released"] = "open"

    def __repr__(self) -> str:
        return (
            f"SharedReservation(estimate={self.estimate}, tokens={self.tokens}, "
            f"sent_at={self.sent_at:.3f}, state={self.state!r})"
        )


@dataclass
class _Loop:
    """One event loop's share: its turn to ask the database, and its concurrency cap."""

    turn: asyncio.Lock
    slots: asyncio.Semaphore | None


@dataclass(frozen=True)
class _View:
    """What the last transaction saw, for `SharedRateLimiter.stats`."""

    requests: int = 0
    tokens: int = 0
    bucket: Bucket = field(default_factory=Bucket)
    offset: float = 0.0  # the database's clock minus this machine's


class SharedRateLimiter:
    """RPM and TPM (and RPD, TPD) shared by every process that names the same bucket in the
    same database; a drop-in for `sfagent.batch.RateLimiter` on an event loop.

    The database's writes run on one thread of the limiter's own, in order: settling,
    releasing and reporting a 429 return at once, and what this process asks the database next
    sees them. Call `aclose` (or `close`) when done.

    Args:
        database_url: ``sqlite:///PATH`` or ``postgresql://USER:PASSWORD@HOST:PORT/DB`` (the
            URLs DBOS takes); the tables are created in it if missing.
        limits: The limits to keep. Every process on a bucket should pass the same ones.
            ``max_concurrency`` holds per process.
        bucket: The limit's name (e.g. ``"<base url>|<model>"``): limiters with the same
            database and bucket share one budget.
        period: The window the per-minute limits apply to, in seconds: 60 for SiliconFlow's
            limits; tests shorten it. ``limits.burst`` is scaled with it, ``limits.margin``
            is added to it as it is. The day limits always span a day.

    Raises:
        UserError: A malformed URL, bucket or period (the URL's password is never shown).
    """

    def __init__(
        self, database_url: str, limits: RateLimits, *, bucket: str, period: float = WINDOW
    ) -> None:
        if not isinstance(limits, RateLimits):
            raise UserError(f"limits must be RateLimits, got {type(limits).__name__}")
        if not isinstance(bucket, str) or not bucket or len(bucket) > 500:
            raise UserError(f"bucket must be a name of 1 to 500 characters, got {bucket!r}")
        if isinstance(period, bool) or not isinstance(period, int | float) or not 0 < period <= DAY:
            raise UserError(f"period must be between 0 and 86400 seconds, got {period!r}")
        url = parsed_url(database_url)
        self._password = Secret(url.password if isinstance(url.password, str) else None)
        self._shown = url.render_as_string(hide_password=True)
        self._postgres = url.get_backend_name() == "postgresql"
        self.limits = limits
        self.bucket = bucket
        self.period = float(period)
        self._rules = Rules.of(limits, self.period)
        self._daily = limits.rpd is not None or limits.tpd is not None
        self._checker = LimiterCore(limits)
        self._engine = _engine(url)
        self._ready = False
        self._executor = concurrent.futures.ThreadPoolExecutor(1, "sfagent-limits")
        self._lock = threading.Lock()
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Loop] = (
            weakref.WeakKeyDictionary()
        )
        self._in_flight = 0
        self._waiting = 0
        self._view = _View()

    def __repr__(self) -> str:
        return f"SharedRateLimiter({self._shown!r}, {self.limits!r}, bucket={self.bucket!r})"

    def check(self, estimate: int) -> None:
        """Raise unless a request of this estimate could ever go.

        Raises:
            EstimateTooLargeError: The estimate is above TPM or TPD.
            UserError: The estimate is not a whole number >= 0.
        """
        self._checker.check(estimate)

    def request(self, estimate: int) -> SlotRequest[SharedReservation]:
        """A request's turn, for ``async with``: ``async with limiter.request(n) as slot:``.

        Leaving the block without settling keeps the estimate charged; call ``slot.release()``
        for a request that was never sent.
        """
        return SlotRequest(self, estimate)

    def acquire_sync(self, estimate: int) -> SharedReservation:
        """Refused: every wait for the shared books is on an event loop.

        Raises:
            UserError: Always; use ``async with limiter.request(n)``.
        """
        raise UserError("a shared rate limiter is asynchronous: use `async with`")

    async def try_reserve(self, estimate: int) -> SharedReservation | float:
        """Admit a request now if it fits, else say how many seconds until it may (no waiting).

        Raises:
            EstimateTooLargeError: The estimate is above TPM or TPD.
            SystemDatabaseError: The database cannot be reached or used.
        """
        self.check(estimate)
        try:
            future = self._executor.submit(self._attempt, estimate)
        except RuntimeError:
            raise UserError(f"the rate limiter for {self.bucket!r} is closed") from None
        try:
            got = await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            future.add_done_callback(self._refund_orphan)  # it may admit after all
            raise
        if isinstance(got, SharedReservation):
            with self._lock:
                self._in_flight += 1
        return got

    async def acquire(self, estimate: int) -> SharedReservation:
        """Wait for a request's turn, then admit it; cancelling leaves nothing behind.

        Raises:
            EstimateTooLargeError: The estimate is above TPM or TPD (raised at once).
            SystemDatabaseError: The database cannot be reached or used.
        """
        self.check(estimate)
        loop = self._loop()
        with self._lock:
            self._waiting += 1
        try:
            if loop.slots is not None:
                await loop.slots.acquire()
            try:
                async with loop.turn:
                    while True:
                        got = await self.try_reserve(estimate)
                        if isinstance(got, SharedReservation):
                            break
                        await asyncio.sleep(min(got, RECHECK))
            except BaseException:
                if loop.slots is not None:
                    loop.slots.release()
                raise
        finally:
            with self._lock:
                self._waiting -= 1
        got._slots = loop.slots
        return got

    def settle(self, reservation: SharedReservation, actual_tokens: int) -> None:
        """Charge a request its real usage instead of its estimate, and end its flight.

        Raises:
            UserError: The reservation was released or belongs to another limiter, or
                `actual_tokens` is not a whole number >= 0.
        """
        self._own(reservation)
        check_settlement(reservation, actual_tokens)
        change, reservation.tokens = actual_tokens - reservation.tokens, actual_tokens
        self._queue(self._recharge, reservation.id, reservation.sent_at, 0, change, actual_tokens)
        self.finish(reservation)

    def finish(self, reservation: SharedReservation) -> None:
        """End a request's flight without its usage (it failed): it keeps its estimate."""
        self._own(reservation)
        if reservation.state == "open":
            reservation.state = "done"
            self._land(reservation)

    def release(self, reservation: SharedReservation) -> None:
        """Refund a request that was never sent; releasing twice does nothing.

        Raises:
            UserError: The request was already answered (settle or finish it instead).
        """
        self._own(reservation)
        if reservation.state == "released":
            return
        if reservation.state == "done":
            raise UserError(
                "a request that was sent counts toward the limits; it cannot be released"
            )
        reservation.state = "released"
        self._queue(self._recharge, reservation.id, reservation.sent_at, -1, -reservation.tokens)
        self._land(reservation)

    def on_rate_limited(self, retry_after: float | None = None, *, sent_at: float) -> None:
        """Pause every process on the bucket after a 429 and cut the rate (see `after_429`).

        Args:
            retry_after: The server's ``Retry-After`` in seconds; without one the pause is a
                second, doubled for each 429 in a row (up to 30 s).
            sent_at: When the refused request was admitted (`SharedReservation.sent_at`).
        """
        self._queue(self._write_429, retry_after, sent_at)

    def stats(self) -> LimiterStats:
        """A snapshot for progress displays, as the last transaction saw the books (no I/O)."""
        view = self._view
        now = time.time() + view.offset
        with self._lock:
            in_flight, waiting = self._in_flight, self._waiting
        return LimiterStats(
            requests=view.requests,
            tokens=view.tokens,
            in_flight=in_flight,
            factor=view.bucket.factor(now),
            paused_for=max(0.0, view.bucket.paused_until - now),
            waiting=waiting,
        )

    async def connect(self) -> None:
        """Create the tables if missing, now rather than at the first request.

        Raises:
            SystemDatabaseError: The database cannot be reached or used.
        """
        await asyncio.wrap_future(self._executor.submit(self._create))

    async def drain(self) -> None:
        """Wait until every settle, release and 429 reported so far is in the database."""
        await asyncio.wrap_future(self._executor.submit(lambda: None))

    def close(self) -> None:
        """Write what is pending and close the database's connections."""
        self._executor.shutdown(wait=True)
        self._engine.dispose()

    async def aclose(self) -> None:
        """`close`, off the event loop."""
        await asyncio.to_thread(self.close)

    # -- this process's side --

    def _loop(self) -> _Loop:
        running = asyncio.get_running_loop()
        with self._lock:
            found = self._loops.get(running)
            if found is None:
                cap = self.limits.max_concurrency
                found = _Loop(asyncio.Lock(), None if cap is None else asyncio.Semaphore(cap))
                self._loops[running] = found
            return found

    def _own(self, reservation: SharedReservation) -> None:
        if not isinstance(reservation, SharedReservation) or reservation._owner is not self:
            raise UserError("this reservation belongs to another limiter")

    def _land(self, reservation: SharedReservation) -> None:
        """The request is no longer in flight."""
        with self._lock:
            self._in_flight -= 1
        slots, reservation._slots = reservation._slots, None
        if slots is not None:
            slots.release()

    def _queue(self, write: Callable[..., object], *args: Any) -> None:
        """Run a write on the database's thread; a failure is logged, not raised."""
        try:
            future = self._executor.submit(write, *args)
        except RuntimeError:
            logger.warning("rate limiter for %r is closed; a write was dropped", self.bucket)
            return
        future.add_done_callback(self._logged)

    def _logged(self, future: concurrent.futures.Future[Any]) -> None:
        if not future.cancelled() and future.exception() is not None:
            logger.warning("rate limiter for %r: %s", self.bucket, future.exception())

    def _refund_orphan(self, future: concurrent.futures.Future[Any]) -> None:
        """Refund a reservation admitted for a caller that was cancelled meanwhile."""
        if future.cancelled() or future.exception() is not None:
            return
        got = future.result()
        if isinstance(got, SharedReservation):
            got.state = "released"
            self._queue(self._recharge, got.id, got.sent_at, -1, -got.tokens)

    # -- the database's thread --

    def _attempt(self, estimate: int) -> SharedReservation | float:
        """One admission: the reservation, or the seconds until it could fit."""
        rules = self._rules
        with self._transaction() as (conn, bucket, now):
            requests, tokens = conn.execute(_SUMS, self._at(now - rules.length)).one()
            books = Books(now, bucket, int(requests), int(tokens))
            if self._daily:
                conn.execute(_PURGE_DAYS, self._at(now - rules.day))
                day = conn.execute(_DAY_SUMS, self._at(now - rules.day)).one()
                books = replace(books, day_requests=int(day[0]), day_tokens=int(day[1]))
            wait, excesses = plan(rules, books, estimate)
            for excess in excesses:
                wait = max(wait, self._leaves(conn, now, excess))
            if wait > _EPSILON:
                self._view = _View(books.requests, books.tokens, bucket, now - time.time())
                return wait
            reservation = SharedReservation(self, estimate, now)
            row = {"id": reservation.id, "sent_at": now, "tokens": estimate}
            conn.execute(_ADMIT, {"bucket": self.bucket, **row})
            if self._daily:
                conn.execute(_DAY_ADD, self._day(now, 1, estimate))
            bucket = paced(rules, bucket, now, 1, estimate, start=True)
            conn.execute(_STORE, {"bucket": self.bucket, **asdict(bucket)})
            self._view = _View(
                books.requests + 1, books.tokens + estimate, bucket, now - time.time()
            )
            return reservation

    def _leaves(self, conn: sa.Connection, now: float, excess: Excess) -> float:
        """Seconds until `excess` has left its window."""
        window, kind, amount = excess
        length = self._rules.length if window == "minute" else self._rules.day
        query = _LEAVING[window, kind]
        found = conn.execute(query, {**self._at(now - length), "excess": amount}).scalar()
        return RECHECK if found is None else float(found) + length - now

    def _recharge(
        self, key: str, sent_at: float, requests: int, tokens: int, now_charged: int = 0
    ) -> None:
        """Change a request's charge by `requests` and `tokens`: a settle to `now_charged`
        tokens (`requests` 0) or a release (-1)."""
        with self._transaction() as (conn, bucket, now):
            if requests < 0:
                conn.execute(_DELETE, {"id": key})
            else:
                conn.execute(_UPDATE, {"id": key, "tokens": now_charged})
            if self._daily:
                conn.execute(_DAY_ADD, self._day(sent_at, requests, tokens))
            bucket = paced(self._rules, bucket, now, requests, tokens, start=False)
            conn.execute(_STORE, {"bucket": self.bucket, **asdict(bucket)})

    def _write_429(self, retry_after: float | None, sent_at: float) -> None:
        with self._transaction() as (conn, bucket, now):
            bucket = after_429(bucket, now, retry_after, sent_at)
            conn.execute(_STORE, {"bucket": self.bucket, **asdict(bucket)})

    def _at(self, since: float) -> dict[str, Any]:
        return {"bucket": self.bucket, "since": since}

    def _day(self, sent_at: float, requests: int, tokens: int) -> dict[str, Any]:
        minute = math.floor(sent_at / WINDOW)
        return {"bucket": self.bucket, "minute": minute, "requests": requests, "tokens": tokens}

    @contextmanager
    def _transaction(self) -> Iterator[tuple[sa.Connection, Bucket, float]]:
        """A transaction holding the bucket's lock, with the bucket's row and the time."""
        with self._errors():
            self._create()
            with self._engine.begin() as conn:
                lock = _LOCK_FOR_UPDATE if self._postgres else _LOCK
                found = conn.execute(lock, {"bucket": self.bucket}).one_or_none()
                if found is None:  # the row was deleted by hand: start it again
                    conn.execute(_ENSURE, {"bucket": self.bucket})
                    found = conn.execute(lock, {"bucket": self.bucket}).one()
                now = float(conn.execute(_NOW).scalar_one()) if self._postgres else time.time()
                conn.execute(_PURGE, self._at(now - self._rules.length))
                yield conn, Bucket(*found), now

    def _create(self) -> None:
        """Create the tables and the bucket's row, once; safe while others do the same."""
        if self._ready:
            return
        with self._errors(), self._engine.begin() as conn:
            # Skipped when the tables are there: CREATE INDEX locks out writers meanwhile.
            if not conn.execute(_EXISTS_PG if self._postgres else _EXISTS).scalar():
                if self._postgres:  # concurrent CREATE TABLE IF NOT EXISTS can collide here
                    conn.execute(_SCHEMA_LOCK, {"key": BUCKETS})
                for statement in _SCHEMA:
                    conn.execute(sa.text(statement))
        with self._errors(), self._engine.begin() as conn:
            conn.execute(_ENSURE, {"bucket": self.bucket})
            # Rows of buckets no longer used: older than any window.
            stale = {"since": time.time() - 2 * DAY}
            conn.execute(sa.text(f"DELETE FROM {REQUESTS} WHERE sent_at < :since"), stale)
            conn.execute(sa.text(f"DELETE FROM {DAYS} WHERE {_DAY_END} < :since"), stale)
        self._ready = True

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sa.exc.SQLAlchemyError as exc:
            cause = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
            text = str(cause).strip()
            said = self._password.redact(text.splitlines()[0] if text else "")
            raise SystemDatabaseError(
                f"cannot keep the shared rate limits in {self._shown}: "
                f"{type(cause).__name__}: {said}"
            ) from None


# --- the database's side ---------------------------------------------------------------------


def _engine(url: sa.URL) -> sa.Engine:
    """An engine for `url`: psycopg 3 for PostgreSQL; on SQLite, every transaction is
    ``BEGIN IMMEDIATE`` (pysqlite's own transaction handling would defer the lock)."""
    if url.get_backend_name() == "postgresql":
        if url.drivername == "postgresql":
            url = url.set(drivername="postgresql+psycopg")
        try:
            return sa.create_engine(
                url, pool_pre_ping=True, connect_args={"connect_timeout": CONNECT_TIMEOUT}
            )
        except ImportError as exc:
            raise ConfigurationError(
                f"PostgreSQL needs its driver ({exc.name}): pip install 'sfagent[dbos]'"
            ) from None
    engine = sa.create_engine(url, connect_args={"timeout": BUSY_TIMEOUT})

    @sa.event.listens_for(engine, "connect")
    def _autocommit(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None  # the driver emits no BEGIN of its own

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _leaving(table: str, at: str, amount: str, order: str) -> sa.TextClause:
    """When the oldest rows holding at least ``:excess`` of `amount` were charged."""
    return sa.text(
        f"SELECT leaves FROM (SELECT {at} AS leaves, SUM({amount}) OVER (ORDER BY {order} "
        f"ROWS UNBOUNDED PRECEDING) AS run FROM {table} WHERE bucket = :bucket AND {at} > :since)"
        " AS live WHERE run >= :excess ORDER BY leaves LIMIT 1"
    )


_DAY_END = f"({DAYS}.minute + 1) * {WINDOW}"  # a minute's tally is timed at its end
_LEAVING = {
    ("minute", "requests"): _leaving(REQUESTS, "sent_at", "1", "sent_at, id"),
    ("minute", "tokens"): _leaving(REQUESTS, "sent_at", "tokens", "sent_at, id"),
    ("day", "requests"): _leaving(DAYS, _DAY_END, "requests", "minute"),
    ("day", "tokens"): _leaving(DAYS, _DAY_END, "tokens", "minute"),
}
_EXISTS = sa.text(f"SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '{DAYS}'")
_EXISTS_PG = sa.text(f"SELECT to_regclass('{DAYS}') IS NOT NULL")  # the last one made
_SCHEMA_LOCK = sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))")
_NOW = sa.text("SELECT EXTRACT(EPOCH FROM clock_timestamp())")
_LOCK = sa.text(f"SELECT {_COLUMNS} FROM {BUCKETS} WHERE bucket = :bucket")
_LOCK_FOR_UPDATE = sa.text(f"SELECT {_COLUMNS} FROM {BUCKETS} WHERE bucket = :bucket FOR UPDATE")
_ENSURE = sa.text(f"INSERT INTO {BUCKETS} (bucket) VALUES (:bucket) ON CONFLICT DO NOTHING")
_STORE = sa.text(
    f"UPDATE {BUCKETS} SET requests_at = :requests_at, tokens_at = :tokens_at, "
    "paused_until = :paused_until, rate_floor = :rate_floor, recover_from = :recover_from, "
    "last_cut = :last_cut, streak = :streak WHERE bucket = :bucket"
)
_PURGE = sa.text(f"DELETE FROM {REQUESTS} WHERE bucket = :bucket AND sent_at <= :since")
_PURGE_DAYS = sa.text(f"DELETE FROM {DAYS} WHERE bucket = :bucket AND {_DAY_END} <= :since")
_SUMS = sa.text(
    f"SELECT COUNT(*), COALESCE(SUM(tokens), 0) FROM {REQUESTS} "
    "WHERE bucket = :bucket AND sent_at > :since"
)
_DAY_SUMS = sa.text(
    f"SELECT COALESCE(SUM(requests), 0), COALESCE(SUM(tokens), 0) FROM {DAYS} "
    f"WHERE bucket = :bucket AND {_DAY_END} > :since"
)
_ADMIT = sa.text(
    f"INSERT INTO {REQUESTS} (id, bucket, sent_at, tokens) VALUES (:id, :bucket, :sent_at, :tokens)"
)
_UPDATE = sa.text(f"UPDATE {REQUESTS} SET tokens = :tokens WHERE id = :id")
_DELETE = sa.text(f"DELETE FROM {REQUESTS} WHERE id = :id")
_DAY_ADD = sa.text(
    f"INSERT INTO {DAYS} (bucket, minute, requests, tokens) "
    "VALUES (:bucket, :minute, :requests, :tokens) ON CONFLICT (bucket, minute) DO UPDATE SET "
    f"requests = {DAYS}.requests + excluded.requests, tokens = {DAYS}.tokens + excluded.tokens"
)
