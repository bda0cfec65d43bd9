"""One small HTTP endpoint per process: ``/metrics`` (Prometheus text format),
``/healthz`` (the process is alive and answering) and ``/readyz`` (200 when every
readiness check passes, 503 with the failing ones otherwise).

Stdlib ``http.server`` in a daemon thread, so it works the same under the plain
loops (relay, poller, sink), uvicorn (webhooks) and faust (processor)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import choose_encoder

from ledgerstream.observability.readiness import Check, Readiness

__all__ = ["ObservabilityServer", "serve_observability"]

log = logging.getLogger(__name__)


class _MultiRegistry:
    """Collects from several registries (the processor keeps its own)."""

    def __init__(self, registries: Iterable[CollectorRegistry]) -> None:
        self.registries = list(registries)

    def collect(self) -> Iterable[Any]:
        for registry in self.registries:
            yield from registry.collect()


class ObservabilityServer:
    """Serve metrics, liveness and readiness on ``host:port`` (port 0: any free port,
    see :attr:`port` after :meth:`start`)."""

    def __init__(self, *, component: str, host: str = "127.0.0.1", port: int = 0,
                 registries: Iterable[CollectorRegistry] = (REGISTRY,),
                 readiness: Readiness | Check | None = None) -> None:
        self.component = component
        self.host = host
        self.requested_port = port
        self.registry = _MultiRegistry(registries)
        if readiness is None:
            readiness = Readiness()
        elif not isinstance(readiness, Readiness):
            readiness = Readiness({"ready": readiness})
        self.readiness = readiness
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._httpd is None:
            return self.requested_port
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ObservabilityServer:
        handler = _handler(self)
        self._httpd = ThreadingHTTPServer((self.host, self.requested_port), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        name=f"observability-{self.component}", daemon=True)
        self._thread.start()
        log.info("%s: /metrics /healthz /readyz on %s", self.component, self.url)
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> ObservabilityServer:
        return self.start() if self._httpd is None else self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def _handler(server: ObservabilityServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0].rstrip("/") or "/"
            if path == "/metrics":
                encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
                self._send(200, encoder(server.registry), content_type)
            elif path in ("/healthz", "/livez"):
                self._json(200, {"status": "ok", "component": server.component})
            elif path == "/readyz":
                result = server.readiness.evaluate()
                self._json(200 if result.ready else 503,
                           {"component": server.component, **result.as_json()})
            else:
                self._json(404, {"error": "not found",
                                 "endpoints": ["/metrics", "/healthz", "/readyz"]})

        def _json(self, status: int, body: dict[str, object]) -> None:
            self._send(status, json.dumps(body).encode(), "application/json")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s: " + format, server.component, *args)

    return Handler


def serve_observability(component: str, port: int | None, *, host: str = "127.0.0.1",
                        registries: Iterable[CollectorRegistry] = (REGISTRY,),
                        readiness: Readiness | Check | None = None,
                        ) -> ObservabilityServer | None:
    """Start the endpoint unless ``port`` is None or 0 (the runtimes' "off")."""
    if not port:
        return None
    return ObservabilityServer(component=component, host=host, port=port,
                               registries=registries, readiness=readiness).start()
