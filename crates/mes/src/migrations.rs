//! MES's schema, per backend.

use adapters::Migration;

/// The schema, with the auto-increment column type of each backend.
macro_rules! init {
    ($serial:literal) => {
        concat!(
            "
CREATE TABLE materials (
    code TEXT PRIMARY KEY,
    version BIGINT NOT NULL,
    name_en TEXT NOT NULL,
    name_ru TEXT NOT NULL,
    density_g_cm3 DOUBLE PRECISION NOT NULL,
    price_per_gram_minor BIGINT NOT NULL,
    currency TEXT NOT NULL,
    active BOOLEAN NOT NULL
);
INSERT INTO materials VALUES
 ('AU585Y', 1, '585 yellow gold', 'Золото 585 жёлтое', 13.1, 750000, 'RUB', TRUE),
 ('AU750Y', 1, '750 yellow gold', 'Золото 750 жёлтое', 15.6, 960000, 'RUB', TRUE),
 ('AG925', 1, '925 sterling silver', 'Серебро 925', 10.4, 12000, 'RUB', TRUE),
 ('PT950', 1, '950 platinum', 'Платина 950', 20.8, 420000, 'RUB', TRUE);
CREATE TABLE orders (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    owner_id TEXT,
    owner_name TEXT NOT NULL,
    owner_email TEXT NOT NULL,
    channel TEXT NOT NULL,
    material_code TEXT NOT NULL,
    material_json TEXT NOT NULL,
    status TEXT NOT NULL,
    object_key TEXT NOT NULL,
    file_name TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    content_sha256 TEXT NOT NULL,
    format TEXT NOT NULL,
    price_minor BIGINT,
    currency TEXT,
    weight_g DOUBLE PRECISION,
    quote_json TEXT,
    geometry_json TEXT,
    reject_code TEXT,
    reject_reason TEXT,
    operator_id TEXT,
    operator_name TEXT,
    taken_at_ms BIGINT,
    tracking_number TEXT,
    created_at_ms BIGINT NOT NULL,
    confirmed_at_ms BIGINT,
    updated_at_ms BIGINT NOT NULL
);
CREATE INDEX orders_queue ON orders (status, confirmed_at_ms DESC, id DESC);
CREATE INDEX orders_operator ON orders (operator_id, status, taken_at_ms DESC);
CREATE TABLE status_history (
    seq ",
            $serial,
            ",
    order_id TEXT NOT NULL REFERENCES orders(id),
    status TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    actor_kind TEXT NOT NULL,
    actor_name TEXT NOT NULL,
    actor_id TEXT,
    note TEXT
);
CREATE INDEX status_history_order ON status_history (order_id, seq);
CREATE TABLE idempotency (
    tenant TEXT NOT NULL,
    idem_key TEXT NOT NULL,
    request_sha256 TEXT NOT NULL,
    order_id TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant, idem_key)
);
"
        )
    };
}

/// Every version of every material: a quote names the version it was made with.
const MATERIAL_VERSIONS: &str = "
CREATE TABLE material_versions (
    code TEXT NOT NULL,
    version BIGINT NOT NULL,
    name_en TEXT NOT NULL,
    name_ru TEXT NOT NULL,
    density_g_cm3 DOUBLE PRECISION NOT NULL,
    price_per_gram_minor BIGINT NOT NULL,
    currency TEXT NOT NULL,
    active BOOLEAN NOT NULL,
    changed_by TEXT NOT NULL,
    changed_at_ms BIGINT NOT NULL,
    PRIMARY KEY (code, version)
);
INSERT INTO material_versions
  SELECT code, version, name_en, name_ru, density_g_cm3, price_per_gram_minor, currency, active, 'seed', 0 FROM materials;
";

/// Direct uploads: a presigned URL handed to a customer, then named by `POST /api/v1/models`.
const UPLOADS: &str = "
CREATE TABLE uploads (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    owner_id TEXT NOT NULL,
    object_key TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    file_name TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    used_by_order TEXT
);
";

/// Direct uploads in parts: S3's multipart upload id and the part size handed out.
const MULTIPART_UPLOADS: &str = "
ALTER TABLE uploads ADD COLUMN multipart_id TEXT;
ALTER TABLE uploads ADD COLUMN part_bytes BIGINT;
";
/// Trace context: each outbox row keeps the span that wrote it; each status
/// change the trace it happened in.
const TRACES: &str = concat!(
    "ALTER TABLE status_history ADD COLUMN trace_id TEXT;\n",
    "ALTER TABLE outbox ADD COLUMN traceparent TEXT;\n"
);
/// The operators' queue at scale: partial indexes over confirmed orders only
/// (a small share of all), newest first, one per filter shape; the weight and
/// price filters are checked inside the index (PostgreSQL: INCLUDE, so the
/// check needs no table row). See docs/queue.md for the plans.
const QUEUE_INDEXES_PG: &str = "
CREATE INDEX orders_queue_first ON orders (confirmed_at_ms DESC, id DESC)
  INCLUDE (weight_g, price_minor) WHERE status = 'CONFIRMED';
CREATE INDEX orders_queue_material ON orders (material_code, confirmed_at_ms DESC, id DESC)
  INCLUDE (weight_g, price_minor) WHERE status = 'CONFIRMED';
CREATE INDEX orders_in_work ON orders (taken_at_ms DESC)
  WHERE status IN ('MANUFACTURING_STARTED', 'MANUFACTURED', 'PACKED');
";
const QUEUE_INDEXES_SQLITE: &str = "
CREATE INDEX orders_queue_first ON orders (confirmed_at_ms DESC, id DESC, weight_g, price_minor)
  WHERE status = 'CONFIRMED';
CREATE INDEX orders_queue_material ON orders (material_code, confirmed_at_ms DESC, id DESC, weight_g, price_minor)
  WHERE status = 'CONFIRMED';
CREATE INDEX orders_in_work ON orders (taken_at_ms DESC)
  WHERE status IN ('MANUFACTURING_STARTED', 'MANUFACTURED', 'PACKED');
";

/// Expired direct uploads that never became an order: their objects are
/// removed by the sweep, which claims each row first (`removed_at_ms`), so a
/// naming and a sweep never both win.
const UPLOAD_SWEEP: &str = "
ALTER TABLE uploads ADD COLUMN removed_at_ms BIGINT;
CREATE INDEX uploads_unused ON uploads (expires_at_ms) WHERE used_by_order IS NULL AND removed_at_ms IS NULL;
";

const INIT_SQLITE: &str = init!("INTEGER PRIMARY KEY AUTOINCREMENT");
const INIT_PG: &str = init!("BIGSERIAL PRIMARY KEY");

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "materials, orders, history, idempotency",
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
        description: "material versions",
        sqlite: MATERIAL_VERSIONS,
        postgres: MATERIAL_VERSIONS,
    },
    Migration {
        version: 5,
        description: "direct uploads",
        sqlite: UPLOADS,
        postgres: UPLOADS,
    },
    Migration {
        version: 6,
        description: "multipart direct uploads",
        sqlite: MULTIPART_UPLOADS,
        postgres: MULTIPART_UPLOADS,
    },
    Migration {
        version: 7,
        description: "trace ids in history and outbox",
        sqlite: TRACES,
        postgres: TRACES,
    },
    Migration {
        version: 8,
        description: "queue indexes",
        sqlite: QUEUE_INDEXES_SQLITE,
        postgres: QUEUE_INDEXES_PG,
    },
    Migration {
        version: 9,
        description: "sweep of expired direct uploads",
        sqlite: UPLOAD_SWEEP,
        postgres: UPLOAD_SWEEP,
    },
];
