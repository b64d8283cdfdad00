"""The PostgreSQL dialect: several servers (nodes) share one database, and the database is the only truth.

The lifecycle is sql/lifecycle.py's, its statements queries.py's; this module connects them to PostgreSQL:
- Writes that must be durable before anyone is told (Submit, ends, retries, stops) go through the group-commit
  writer on a connection of its own; claims, renewals, reaps and reads are transactions on a pooled connection,
  durable when they return.
- Wake-ups: one NOTIFY per commit at most, as a hint without task data; each node listens on one connection
  (listen.py) and polls about every second besides, so a lost notification only delays work or a stop.
- Times are the nodes' clocks (keep them in sync, e.g. with NTP): leases are tens of seconds, far above clock skew.

Nothing here runs on the event loop; a slow or lost database blocks only the thread that asked. The design:
docs/architecture.md, "The PostgreSQL board".
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import psycopg
import psycopg_pool

from taskservice.core.board.answers import DEFAULT_MAX_QUEUE_BYTES
from taskservice.core.board.base import DatabaseUnreachable
from taskservice.core.board.postgres.listen import Listener
from taskservice.core.board.postgres.logs import DatabaseLogs
from taskservice.core.board.postgres.queries import PgQueries
from taskservice.core.board.postgres.schema import CHANNEL, migrate
from taskservice.core.board.sql.lifecycle import SqlBoard
from taskservice.core.board.sql.turns import Fairness
from taskservice.core.board.sql.writer import GroupWriter, Op
from taskservice.core.model.errors import StoreOpenError, StoreUnavailable

CONNECT_TIMEOUT_SECONDS = 5
NOTIFIED = ("work", "stop")
# How long a call waits for a pooled connection: while the pool is merely busy, and once the database was found away
# (every connection gone, new ones refused), when a caller must hear UNAVAILABLE at once, not after the busy wait.
POOL_WAIT_SECONDS = 10.0
POOL_WAIT_AWAY_SECONDS = 1.0
# The pool's attempts to reconnect back off (1, 2, 4 s...) and give up after this long; the next call that needs a
# connection starts them again at once. So once the database is back, calls find it within a second or two, however
# long it was away (with psycopg_pool's default of 5 minutes, the backoff had grown to a minute).
POOL_RECONNECT_SECONDS = 2.0


def redacted(dsn: str) -> str:
    """The DSN without its password, for messages."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "the --db database"
    info.pop("password", None)
    host, db = info.get("host", "localhost"), info.get("dbname", "")
    user = info.get("user")
    return f"postgresql://{f'{user}@' if user else ''}{host}/{db}"


class PgSession:
    """The writer's connection: a transaction per batch, with one NOTIFY of the hints asked."""

    lost_errors: tuple[type[BaseException], ...] = (psycopg.OperationalError,)
    op_errors: tuple[type[BaseException], ...] = (psycopg.Error,)

    def __init__(self, connect: Callable[[], psycopg.Connection[Any]]) -> None:
        self._connect = connect
        self._conn: psycopg.Connection[Any] | None = None

    def transaction(self, ops: list[Op], hints: list[str]) -> list[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = self._connect()
        with self._conn.transaction(), self._conn.cursor() as cur:
            results = [op(cur) for op in ops]
            # Only the hints worth a NOTIFY (a global lock at commit): not `moved`, which other nodes poll for.
            notified = [hint for hint in hints if hint in NOTIFIED]
            if notified:
                cur.execute("SELECT pg_notify(%s, %s)", (CHANNEL, ",".join(notified)))
        return results

    def reset(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
        self._conn = None

    def close(self) -> None:
        if self._conn is not None and not self._conn.closed:
            self._conn.close()


class PgDriver:
    def __init__(self, dsn: str, *, pool_size: int) -> None:
        self.where = redacted(dsn)
        self._dsn = dsn
        try:
            with self._connect() as conn:
                migrate(conn, self.where)
        except psycopg.OperationalError as exc:
            raise DatabaseUnreachable(f"cannot reach {self.where}: {str(exc).strip()}") from exc
        except psycopg.Error as exc:
            raise StoreOpenError(f"{self.where} cannot be used: {exc}") from exc
        self.queries = PgQueries()
        # Set when a call found the database away, cleared by the next that reached it.
        self._away = False
        self._pool = psycopg_pool.ConnectionPool(
            dsn,
            min_size=1,
            max_size=pool_size,
            kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_SECONDS},
            timeout=POOL_WAIT_SECONDS,
            reconnect_timeout=POOL_RECONNECT_SECONDS,
            open=True,
            name="taskservice-pg",
        )
        self.writer = GroupWriter(PgSession(self._connect), name="taskservice-pg-writer")
        self._listener = Listener(self._connect)
        self._logs: DatabaseLogs | None = None

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self._dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS)

    def transact(self, op: Op) -> Any:
        away = self._away or not self.writer.healthy
        try:
            with (
                self._pool.connection(timeout=POOL_WAIT_AWAY_SECONDS if away else POOL_WAIT_SECONDS) as conn,
                conn.transaction(),
                conn.cursor() as cur,
            ):
                answer = op(cur)
        except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
            self._away = True
            raise StoreUnavailable(f"the task database cannot be reached: {str(exc).strip()}") from exc
        self._away = False
        return answer

    def read(self, op: Op) -> Any:
        return self.transact(op)

    def on_hint(self, hint: str, listener: Callable[[], None]) -> None:
        self._listener.on(hint, listener)

    def task_logs(self) -> DatabaseLogs:
        if self._logs is None:
            self._logs = DatabaseLogs(self._pool)
        return self._logs

    def close(self) -> None:
        if self._logs is not None:
            self._logs.close()
        self._listener.close()
        self.writer.close()
        self._pool.close()


class PostgresBoard(SqlBoard):
    def __init__(
        self,
        dsn: str,
        *,
        max_queue: int = 100_000,
        max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES,
        pool_size: int = 16,
        fairness: Fairness | None = None,
    ) -> None:
        driver = PgDriver(dsn, pool_size=pool_size)
        self.where = driver.where
        super().__init__(
            driver, max_queue=max_queue, max_queue_bytes=max_queue_bytes, exclusive=False, fairness=fairness
        )
