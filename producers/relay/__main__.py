"""``python -m producers.relay``: one relay configured from the environment."""

import logging

from producers.relay import RelaySettings, run_relay

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    run_relay(RelaySettings())
