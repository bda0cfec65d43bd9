"""Choosing loopback ports: the preferred one if it is free, else any free one."""

from __future__ import annotations

import socket


def is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def any_free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def choose_port(preferred: int, taken: set[int] | None = None) -> int:
    """Return ``preferred`` when free (and not already handed out), else a free one."""
    taken = taken or set()
    if preferred and preferred not in taken and is_free(preferred):
        return preferred
    while True:
        port = any_free_port()
        if port not in taken:
            return port


def accepts_connections(port: int, host: str = "127.0.0.1", timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False
