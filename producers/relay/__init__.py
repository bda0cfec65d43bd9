"""The outbox relay (``run_relay``); ``python -m producers.relay`` runs one from env."""

from producers.relay.relay import Relay, RelaySettings, run_relay

__all__ = ["Relay", "RelaySettings", "run_relay"]
