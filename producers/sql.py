"""Apply the SQL files of ``deploy/sql`` (all idempotent), so tests, the simulator and the
runtimes create exactly the tables the reference deployment documents."""

from __future__ import annotations

from pathlib import Path

import psycopg

SQL_DIR = Path(__file__).resolve().parent.parent / "deploy" / "sql"
CRM_SQL = SQL_DIR / "crm.sql"
CRM_TRIGGERS_SQL = SQL_DIR / "crm_triggers.sql"
STATE_SQL = SQL_DIR / "producers_state.sql"


def apply_sql(dsn: str, *files: Path) -> None:
    """Run each file in its own transaction (files are idempotent)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET client_min_messages = warning")
        for path in files:
            with conn.transaction():
                conn.execute(path.read_text(encoding="utf-8").encode())


def apply_crm_schema(dsn: str, *, triggers: bool = False) -> None:
    """The reference CRM tables and the outbox (plus the outbox-writing triggers)."""
    apply_sql(dsn, CRM_SQL, *((CRM_TRIGGERS_SQL,) if triggers else ()))


def apply_state_schema(dsn: str) -> None:
    """The poller's watermarks/snapshots and the webhook receiver's replay store."""
    apply_sql(dsn, STATE_SQL)
