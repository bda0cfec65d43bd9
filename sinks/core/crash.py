"""Crash injection: the process kills itself (SIGKILL, no cleanup) at a named point.

The exactly-once claims of the sink are proven by killing it at every dangerous step
and checking the platform afterwards; doing it from inside the process makes the
point of death exact instead of a race against a timer. Off unless configured.
"""

from __future__ import annotations

import os
import signal

POINTS = ("after_api_call", "after_db_commit", "mid_batch")


class CrashPoints:
    def __init__(self, spec: str | None) -> None:
        self.point: str | None = None
        self.remaining = 0
        if spec:
            point, _, count = spec.partition(":")
            if point not in POINTS:
                raise ValueError(f"unknown crash point {point!r}; one of {POINTS}")
            self.point, self.remaining = point, int(count or 1)

    def reached(self, point: str) -> None:
        if point != self.point:
            return
        self.remaining -= 1
        if self.remaining <= 0:
            os.kill(os.getpid(), signal.SIGKILL)
