"""deploy localstack package."""
