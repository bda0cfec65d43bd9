"""Detached processes with pid files, so `up`, `status` and `down` work across CLI runs."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from deploy.localstack.errors import StackError


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def is_alive(pid: int | None, must_contain: str | None = None) -> bool:
    """True if ``pid`` runs and (optionally) its command line mentions ``must_contain``.

    The command-line check protects against a recycled pid after a reboot or a
    long-dead process: we never signal a stranger.
    """
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if must_contain is None:
        return True
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return True
    if "<defunct>" in cmdline or not cmdline:
        return False
    return must_contain in cmdline


def spawn(
    argv: Sequence[str],
    *,
    log_file: Path,
    pid_file: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Start ``argv`` in its own session, output appended to ``log_file``."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )
    pid_file.write_text(str(proc.pid))
    return proc.pid


def terminate(pid: int | None, *, timeout_s: float = 30.0) -> bool:
    """SIGTERM the process group, then SIGKILL after ``timeout_s``. True if it was running."""
    if not pid or not is_alive(pid):
        return False
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not is_alive(pid):
            return True
        _reap(pid)
        time.sleep(0.2)
    _signal_group(pid, signal.SIGKILL)
    time.sleep(0.2)
    _reap(pid)
    return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def wait_until(
    check: Callable[[], bool],
    *,
    timeout_s: float,
    what: str,
    alive: Callable[[], bool] | None = None,
    log_file: Path | None = None,
    interval_s: float = 0.25,
) -> float:
    """Poll ``check`` until true; fail fast if the process died. Returns seconds waited."""
    start = time.monotonic()
    while True:
        if check():
            return time.monotonic() - start
        if alive is not None and not alive():
            raise StackError(f"{what} exited during start-up.{_tail(log_file)}")
        if time.monotonic() - start > timeout_s:
            raise StackError(f"{what} not ready after {timeout_s:g}s.{_tail(log_file)}")
        time.sleep(interval_s)


def _tail(log_file: Path | None, lines: int = 15) -> str:
    if log_file is None or not log_file.exists():
        return ""
    text = log_file.read_text(errors="replace").splitlines()[-lines:]
    return f" Last lines of {log_file}:\n  " + "\n  ".join(text)
