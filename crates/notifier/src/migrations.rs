//! The notifier's schema, per backend: the inbox, the B2B organisations'
//! webhooks, and the delivery log (at most one notification per order,
//! status, channel and target) with every attempt.

use adapters::Migration;

/// The same text runs on SQLite and PostgreSQL (no auto-increment columns).
const INIT: &str = "
CREATE TABLE webhooks (
    org TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
CREATE TABLE deliveries (
    id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL,
    status TEXT NOT NULL,
    channel TEXT NOT NULL,
    target TEXT NOT NULL,
    org TEXT,
    event_id TEXT NOT NULL,
    body TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    last_status_code BIGINT,
    last_error TEXT,
    next_attempt_at_ms BIGINT,
    created_at_ms BIGINT NOT NULL,
    sent_at_ms BIGINT,
    UNIQUE (order_id, status, channel, target)
);
CREATE INDEX deliveries_due ON deliveries (state, next_attempt_at_ms);
CREATE INDEX deliveries_org_newest ON deliveries (org, created_at_ms DESC, id DESC);
CREATE TABLE delivery_attempts (
    delivery_id TEXT NOT NULL REFERENCES deliveries(id),
    attempt BIGINT NOT NULL,
    at_ms BIGINT NOT NULL,
    status_code BIGINT,
    error TEXT,
    duration_ms BIGINT NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);
";

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "inbox",
        sqlite: adapters::inbox::SQL,
        postgres: adapters::inbox::SQL,
    },
    Migration {
        version: 2,
        description: "webhooks, deliveries and their attempts",
        sqlite: INIT,
        postgres: INIT,
    },
    Migration {
        version: 3,
        description: "why a delivery was abandoned",
        sqlite: ABANDONED_REASON,
        postgres: ABANDONED_REASON,
    },
];

/// `max_attempts`, `invalid_address`, `permanent_failure`, … (None until abandoned).
const ABANDONED_REASON: &str = "ALTER TABLE deliveries ADD COLUMN abandoned_reason TEXT;";
