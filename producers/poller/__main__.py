"""``python -m producers.poller``: one poller configured from the environment."""

import logging

from producers.poller import PollerSettings, run_poller

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    run_poller(PollerSettings())
