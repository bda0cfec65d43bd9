"""sinks platforms package."""
