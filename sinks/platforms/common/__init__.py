"""Mapping helpers shared by every platform module: money on the wire, CRM line
kinds, tax spreading, name limits, document markers, and the reconciliation of a
platform's ledger against the CRM's."""
