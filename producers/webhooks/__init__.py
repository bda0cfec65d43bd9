"""The HMAC-signed webhook receiver (``run_webhooks``)."""

from producers.webhooks.server import WebhookSettings, build_app, run_webhooks
from producers.webhooks.signature import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign, verify

__all__ = ["SIGNATURE_HEADER", "TIMESTAMP_HEADER", "WebhookSettings", "build_app",
           "run_webhooks", "sign", "verify"]
