"""The status poller (``run_poller``) for CRMs without an outbox."""

from producers.poller.poller import Poller, PollerSettings, run_poller
from producers.poller.source import HttpPollSource, PollSource, Position, SqlPollSource
from producers.poller.state import PollerState

__all__ = ["HttpPollSource", "PollSource", "Poller", "PollerSettings", "PollerState",
           "Position", "SqlPollSource", "run_poller"]
