"""ledgerstream package."""
