-- Shared rate budget per (platform, tenant): one row holding every window's tokens,
-- updated under SELECT ... FOR UPDATE so that several worker processes draw from one
-- budget (see sinks.transport.ratelimit.PostgresRateLimiter). Times are epoch seconds.
CREATE TABLE IF NOT EXISTS sink_rate_budgets (
    platform      text             NOT NULL,
    tenant_id     text             NOT NULL,
    tokens        jsonb            NOT NULL DEFAULT '{}'::jsonb,
    refilled_at   double precision NOT NULL,
    paused_until  double precision NOT NULL DEFAULT 0,
    PRIMARY KEY (platform, tenant_id)
);
