-- OAuth tokens per (platform, tenant), encrypted at rest (AES-GCM, see sinks.transport.auth).
-- Refreshes lock the row with SELECT ... FOR UPDATE; `version` increases on every
-- rotation so a worker that waited for the lock can tell that another one already
-- refreshed. `expires_at` is the access token's expiry, kept in clear for monitoring.
CREATE TABLE IF NOT EXISTS sink_oauth_tokens (
    platform    text        NOT NULL,
    tenant_id   text        NOT NULL,
    ciphertext  bytea       NOT NULL,
    version     bigint      NOT NULL DEFAULT 1,
    expires_at  timestamptz,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (platform, tenant_id)
);
