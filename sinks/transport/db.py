"""PostgreSQL plumbing shared by the token store and the shared rate budget.

Both take either a conninfo string (a short-lived connection per operation: fine for
refreshes, which are rare) or a ``psycopg_pool.ConnectionPool`` (for the rate budget,
consulted on every request).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from importlib import resources

import psycopg
from psycopg_pool import ConnectionPool

__all__ = ["Database", "apply_schema", "connection", "schema_statements"]

Database = str | ConnectionPool


def schema_statements() -> list[tuple[str, str]]:
    """``(file name, SQL)`` of ``sinks/transport/sql/*.sql`` in order."""
    folder = resources.files("sinks.transport") / "sql"
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return [(f.name, f.read_text(encoding="utf-8")) for f in files]


def apply_schema(db: Database) -> None:
    """Create the transport tables if they do not exist (idempotent)."""
    with connection(db) as conn, conn.transaction():
        for _, sql in schema_statements():
            conn.execute(sql.encode())  # trusted file content from the package


@contextlib.contextmanager
def connection(db: Database) -> Iterator[psycopg.Connection]:
    """An autocommit connection; callers open transactions explicitly with
    ``conn.transaction()`` so that a lock lives exactly as long as the block."""
    if isinstance(db, ConnectionPool):
        with db.connection() as conn:
            conn.autocommit = True
            yield conn
    else:
        with psycopg.connect(db, autocommit=True) as conn:
            yield conn
