"""The test PostgreSQL (127.0.0.1:5432, database `test`, or $KRONIKER_TEST_PG): is it there, and schemas of its
own for each test or benchmark run, so that nothing of one run meets another. Used by conftest, the server
tests and bench/server.py."""

from __future__ import annotations

import os
import uuid

PG_URL = os.environ.get("KRONIKER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def pg_reachable() -> str | None:
    """None when PostgreSQL answers; else why not."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed"
    try:
        with psycopg.connect(PG_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # any failure to connect means: not here
        return f"PostgreSQL at {PG_URL} is not reachable ({type(exc).__name__})"
    return None


def new_schema(prefix: str) -> tuple[str, str]:
    """A new schema in the test database: (its name, a database URL that works in it)."""
    import psycopg

    schema = f"{prefix}{uuid.uuid4().hex[:16]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return schema, f"{PG_URL}?options=-csearch_path%3D{schema}"


def drop_schema(schema: str) -> None:
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
