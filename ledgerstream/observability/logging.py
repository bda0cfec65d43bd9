"""JSON structured logs: one object per line with ``timestamp`` (UTC, ISO 8601),
``level``, ``component``, ``logger``, ``message``, the ``extra={...}`` fields and, for
exceptions, ``exception``. Credentials are masked by the shared redactor
(:mod:`sinks.transport.redact`) in the message, the traceback and string extras."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any

from sinks.transport.redact import SecretRedactor, default_redactor, install_redaction

__all__ = ["JsonFormatter", "setup_logging"]

# Attributes every LogRecord has; anything else came from ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def __init__(self, component: str, redactor: SecretRedactor | None = None) -> None:
        super().__init__()
        self.component = component
        self.redactor = redactor or default_redactor()

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "component": self.component,
            "logger": record.name,
            "message": self.redactor.redact(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_") and key not in body:
                body[key] = self._field(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            body["exception"] = self.redactor.redact(record.exc_text)
        if record.stack_info:
            body["stack"] = self.redactor.redact(self.formatStack(record.stack_info))
        return json.dumps(body, default=lambda v: self.redactor.redact(str(v)),
                          ensure_ascii=False)

    def _field(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redactor.redact(value)
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, list | tuple):
            return [self._field(v) for v in value]
        if isinstance(value, dict):
            return {str(k): self._field(v) for k, v in value.items()}
        return self.redactor.redact(str(value))


def setup_logging(component: str, *, level: str | int = "INFO", json_format: bool = True,
                  stream: IO[str] | None = None) -> logging.Handler:
    """Replace the root logger's handlers with one that writes JSON lines (or plain
    text with ``json_format=False``) to ``stream`` (stderr), with the secret redactor
    installed. Returns the handler."""
    if isinstance(level, str):
        name = level.upper()
        level = logging.getLevelName("WARNING" if name == "WARN" else name)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(component) if json_format else logging.Formatter(
        f"%(asctime)s %(levelname)s {component} %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # httpx and httpcore log every request at INFO: at a sink's rate that is most of
    # its log volume and a measurable share of its CPU (JSON + redaction per line),
    # and the same facts are on /metrics (api latency, status). Quiet unless debugging.
    numeric = level if isinstance(level, int) else logging.INFO
    for chatty in QUIET_LOGGERS:
        logging.getLogger(chatty).setLevel(
            max(numeric, logging.WARNING) if numeric > logging.DEBUG else logging.NOTSET)
    install_redaction(root)
    return handler


#: Third-party loggers that log per request or per message at INFO.
QUIET_LOGGERS = ("httpx", "httpcore")
