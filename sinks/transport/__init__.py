"""sinks transport package."""
