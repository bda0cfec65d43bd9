"""sinks sandbox package."""
