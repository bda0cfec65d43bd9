"""sinks core package."""
