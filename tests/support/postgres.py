"""A PostgreSQL database made for this test run, dropped at its end.

The server is found through TASKSERVICE_TEST_POSTGRES (default: the machine's trust-auth PostgreSQL at
127.0.0.1:5432). Without one, the tests that need it skip, saying why; under CI (CI=true) they fail instead.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest

ADMIN_DSN = os.environ.get("TASKSERVICE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def _dsn_for(database: str) -> str:
    """The admin DSN's server, another database, as a URL (what `taskservice serve --db` takes)."""
    import psycopg

    info = psycopg.conninfo.conninfo_to_dict(ADMIN_DSN)
    user = info.get("user", "")
    password = f":{info['password']}" if info.get("password") else ""
    port = f":{info['port']}" if info.get("port") else ""
    return f"postgresql://{user}{password}{'@' if user else ''}{info.get('host', 'localhost')}{port}/{database}"


def _unavailable(reason: str) -> None:
    message = f"PostgreSQL is not available ({reason}); set TASKSERVICE_TEST_POSTGRES to a server's DSN"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}: under CI the PostgreSQL tests must run")
    pytest.skip(message)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """The DSN of a fresh database for this run."""
    try:
        import psycopg
    except ImportError:
        _unavailable("psycopg is not installed")
    name = f"taskservice_test_{os.getpid()}_{secrets.token_hex(3)}"
    try:
        with psycopg.connect(ADMIN_DSN, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        _unavailable(str(exc).strip().splitlines()[0])
    try:
        yield _dsn_for(name)
    finally:
        with psycopg.connect(ADMIN_DSN, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_dsn(pg_database: str) -> str:
    """The run's database, emptied for this test."""
    import psycopg

    with psycopg.connect(pg_database, autocommit=True) as conn:
        tables = {row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        ours = sorted(t for t in tables if t.startswith("taskservice_") and t != "taskservice_schema")
        if ours:
            conn.execute(f"TRUNCATE {', '.join(ours)} RESTART IDENTITY")
    return pg_database
