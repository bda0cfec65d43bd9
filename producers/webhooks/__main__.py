"""``python -m producers.webhooks``: the receiver configured from the environment."""

import logging

from producers.webhooks import WebhookSettings, run_webhooks

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    run_webhooks(WebhookSettings())
