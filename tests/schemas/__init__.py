"""Tests of the event contract (schemas/)."""
