//! The CRM's schema, per backend.

use adapters::Migration;

/// The schema, with the auto-increment column type of each backend.
macro_rules! init {
    ($serial:literal) => {
        concat!(
            "
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    org TEXT,
    password_hash TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL
);
CREATE TABLE api_keys (
    key_hash TEXT PRIMARY KEY,
    prefix TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id),
    created_at_ms BIGINT NOT NULL,
    revoked_at_ms BIGINT
);
CREATE TABLE orders (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    owner_id TEXT,
    owner_name TEXT NOT NULL,
    owner_email TEXT NOT NULL,
    channel TEXT NOT NULL,
    material TEXT NOT NULL,
    file_name TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    status TEXT NOT NULL,
    price_minor BIGINT,
    currency TEXT,
    quote_json TEXT,
    geometry_json TEXT,
    reject_code TEXT,
    reject_reason TEXT,
    tracking_number TEXT,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
CREATE INDEX orders_tenant_newest ON orders (tenant, created_at_ms DESC, id DESC);
CREATE INDEX orders_newest ON orders (created_at_ms DESC, id DESC);
CREATE INDEX orders_status_newest ON orders (status, created_at_ms DESC, id DESC);
CREATE TABLE order_history (
    seq ",
            $serial,
            ",
    order_id TEXT NOT NULL REFERENCES orders(id),
    status TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    actor_kind TEXT NOT NULL,
    actor_name TEXT NOT NULL,
    actor_id TEXT,
    event_id TEXT,
    note TEXT
);
CREATE INDEX order_history_order ON order_history (order_id, seq);
"
        )
    };
}

/// Trace context: each outbox row keeps the span that wrote it; each step of
/// an order's journey the trace it happened in.
const TRACES: &str = concat!(
    "ALTER TABLE order_history ADD COLUMN trace_id TEXT;\n",
    "ALTER TABLE outbox ADD COLUMN traceparent TEXT;\n"
);

const INIT_SQLITE: &str = init!("INTEGER PRIMARY KEY AUTOINCREMENT");

const INIT_PG: &str = init!("BIGSERIAL PRIMARY KEY");

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "accounts, orders, history",
        sqlite: INIT_SQLITE,
        postgres: INIT_PG,
    },
    Migration {
        version: 2,
        description: "outbox",
        sqlite: adapters::outbox::SQL,
        postgres: adapters::outbox::SQL_PG,
    },
    Migration {
        version: 3,
        description: "inbox",
        sqlite: adapters::inbox::SQL,
        postgres: adapters::inbox::SQL,
    },
    Migration {
        version: 4,
        description: "trace ids in history and outbox",
        sqlite: TRACES,
        postgres: TRACES,
    },
    Migration {
        version: 5,
        description: "SLA announcements",
        sqlite: crate::sla::SQL,
        postgres: crate::sla::SQL,
    },
    Migration {
        version: 6,
        description: "people's language (for notifications)",
        sqlite: crate::notify::SQL,
        postgres: crate::notify::SQL,
    },
];
