"""A PostgreSQL cluster from Debian's package in a project-owned data directory.

PostgreSQL refuses to run as root, so when the CLI runs as root (CI, containers)
the cluster directory is handed to the ``postgres`` system user and the server
tools run through ``runuser``. Authentication is ``trust`` on loopback only: this
is a local development stack, never a production database.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
from pathlib import Path

import psycopg

from deploy.localstack.errors import StackError
from deploy.localstack.ports import accepts_connections
from deploy.localstack.probes import check_database
from deploy.localstack.settings import StackSettings

SUPERUSER = "ledgerstream"
DATABASE = "ledgerstream"


def find_bin_dir(settings: StackSettings) -> Path:
    if settings.postgres_bin_dir:
        return settings.postgres_bin_dir
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for candidate in candidates:
        if (candidate / "pg_ctl").exists():
            return candidate
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    raise StackError("PostgreSQL server binaries not found; apt-get install postgresql")


class Postgres:
    name = "postgres"

    def __init__(self, settings: StackSettings, port: int):
        self.settings = settings
        self.port = port
        self.home = settings.state_dir / "postgres"
        self.data_dir = self.home / "data"
        self.log_file = self.home / "postgres.log"
        self.bin_dir = find_bin_dir(settings)

    @property
    def endpoint(self) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{DATABASE}"

    def running(self) -> bool:
        if not (self.data_dir / "postmaster.pid").exists():
            return False
        return self._pg_ctl("status", check=False).returncode == 0

    def healthy(self, timeout_s: float = 3.0) -> bool:
        try:
            check_database(self.endpoint, timeout_s)
        except StackError:
            return False
        return True

    def start(self) -> float:
        started = time.monotonic()
        self.home.mkdir(parents=True, exist_ok=True)
        self._own(self.home)
        if not (self.data_dir / "PG_VERSION").exists():
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self._run(
                [
                    str(self.bin_dir / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    SUPERUSER,
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ],
                what="initdb",
            )
        if accepts_connections(self.port):
            raise StackError(f"PostgreSQL cannot start: 127.0.0.1:{self.port} is already in use")
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 "
            f"-c unix_socket_directories={self.home} -c wal_level=logical "
            "-c max_connections=300 -c max_wal_senders=10 -c max_replication_slots=10 "
            "-c shared_buffers=256MB"
        )
        # pg_ctl removes a stale postmaster.pid left by a killed server by itself.
        self._pg_ctl(
            "start",
            "-w",
            "-t",
            str(int(self.settings.start_timeout_s)),
            "-l",
            str(self.log_file),
            "-o",
            options,
        )
        self._ensure_database()
        return time.monotonic() - started

    def stop(self) -> bool:
        if not self.running():
            return False
        self._pg_ctl("stop", "-m", "fast", "-w")
        return True

    def _ensure_database(self) -> None:
        admin = f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/postgres"
        with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
            if exists.fetchone() is None:
                conn.execute(f'CREATE DATABASE "{DATABASE}"')

    def _pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), *args]
        return self._run(argv, what=f"pg_ctl {args[0]}", check=check)

    def _run(
        self, argv: list[str], *, what: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        if os.geteuid() == 0:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        result = subprocess.run(argv, capture_output=True, text=True, cwd="/")
        if check and result.returncode != 0:
            log = ""
            if self.log_file.exists():
                log = self.log_file.read_text(errors="replace")[-2000:]
            raise StackError(f"PostgreSQL {what} failed: {result.stderr.strip()}\n{log}")
        return result

    @staticmethod
    def _own(path: Path) -> None:
        """As root, give the cluster directory to the postgres user (it refuses root)."""
        if os.geteuid() != 0:
            return
        try:
            entry = pwd.getpwnam("postgres")
        except KeyError as exc:
            raise StackError(
                "running as root needs the 'postgres' system user (apt-get install postgresql)"
            ) from exc
        for root, dirs, files in os.walk(path):
            os.chown(root, entry.pw_uid, entry.pw_gid)
            for name in (*dirs, *files):
                target = os.path.join(root, name)
                os.chown(target, entry.pw_uid, entry.pw_gid, follow_symlinks=False)
