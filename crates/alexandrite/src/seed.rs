//! `alexandrite seed --orders N`: realistic orders in every status, written
//! straight into the CRM's and MES's databases (the same rows and histories
//! their consumers would have written), fast: multi-row INSERTs of literal
//! values in large transactions, CRM and MES in parallel.

use adapters::{Backend, Db};
use domain::OrderStatus;
use domain::events::{BBox, GeometrySummary, Quote};
use domain::price::{self, MaterialSnapshot, PriceInput, PricingRules};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Instant;

/// Orders per INSERT statement.
const ROWS_PER_INSERT: usize = 500;
/// Orders per transaction.
const ORDERS_PER_TX: usize = 20_000;

/// What `seed` did.
#[derive(Debug, Serialize)]
pub struct Report {
    pub orders: u64,
    pub history_rows: u64,
    pub by_status: BTreeMap<String, u64>,
    pub seconds: f64,
}

/// The share of each final status, in ‰ (sums to 1000): most orders of a
/// year are shipped; the queue (CONFIRMED) holds a few per cent.
const MIX: &[(OrderStatus, u32)] = &[
    (OrderStatus::Shipped, 600),
    (OrderStatus::Packed, 30),
    (OrderStatus::Manufactured, 40),
    (OrderStatus::ManufacturingStarted, 60),
    (OrderStatus::Confirmed, 50),
    (OrderStatus::AwaitingConfirmation, 80),
    (OrderStatus::Cancelled, 80),
    (OrderStatus::Rejected, 30),
    (OrderStatus::Pricing, 30),
];

const CUSTOMERS: &[(&str, &str, &str, &str)] = &[
    // tenant, name, email, channel
    ("org:brand-demo", "Brand Demo", "api@brand.example", "api"),
    (
        "org:goldsmiths",
        "Goldsmiths Ltd",
        "orders@goldsmiths.example",
        "api",
    ),
    (
        "org:ringmakers",
        "Ring Makers",
        "b2b@ringmakers.example",
        "api",
    ),
    ("user:anna", "Анна Петрова", "anna@example.com", "shop"),
    ("user:ivan", "Иван Смирнов", "ivan@example.com", "shop"),
    ("user:maria", "Maria Garcia", "maria@example.com", "shop"),
    ("user:olga", "Ольга Ким", "olga@example.com", "shop"),
];

const OPERATORS: &[&str] = &["Олег", "Светлана", "Артём", "Nina", "Павел", "Ирина"];

const MODELS: &[&str] = &[
    "ring", "signet", "pendant", "earring", "bracelet", "band", "charm",
];

const REJECTIONS: &[(&str, &str)] = &[
    ("not_watertight", "not watertight: 64 open edges"),
    (
        "not_watertight",
        "not watertight: 12 open edges, 3 non-manifold edges",
    ),
    ("too_many_triangles", "exceeds 2,000,000 triangles"),
];

/// One generated order with its history.
struct Order {
    id: String,
    tenant: &'static str,
    owner_name: &'static str,
    owner_email: &'static str,
    channel: &'static str,
    material: usize,
    file_name: String,
    size_bytes: i64,
    sha: String,
    status: OrderStatus,
    priced: Option<(i64, f64, String, String)>,
    geometry_json: Option<String>,
    reject: Option<(&'static str, &'static str)>,
    operator: Option<(String, &'static str)>,
    taken_at: Option<i64>,
    tracking: Option<String>,
    created: i64,
    confirmed: Option<i64>,
    updated: i64,
    /// (status, at, actor kind, actor name, actor id, note)
    steps: Vec<(
        OrderStatus,
        i64,
        &'static str,
        String,
        Option<String>,
        Option<String>,
    )>,
}

fn path_to(status: OrderStatus) -> Vec<OrderStatus> {
    use OrderStatus::*;
    match status {
        Pricing => vec![Pricing],
        Rejected => vec![Pricing, Rejected],
        AwaitingConfirmation => vec![Pricing, AwaitingConfirmation],
        Cancelled => vec![Pricing, AwaitingConfirmation, Cancelled],
        Confirmed => vec![Pricing, AwaitingConfirmation, Confirmed],
        ManufacturingStarted => vec![
            Pricing,
            AwaitingConfirmation,
            Confirmed,
            ManufacturingStarted,
        ],
        Manufactured => vec![
            Pricing,
            AwaitingConfirmation,
            Confirmed,
            ManufacturingStarted,
            Manufactured,
        ],
        Packed => vec![
            Pricing,
            AwaitingConfirmation,
            Confirmed,
            ManufacturingStarted,
            Manufactured,
            Packed,
        ],
        Shipped => vec![
            Pricing,
            AwaitingConfirmation,
            Confirmed,
            ManufacturingStarted,
            Manufactured,
            Packed,
            Shipped,
        ],
    }
}

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;

fn generate(
    rng: &mut StdRng,
    now: i64,
    materials: &[MaterialSnapshot],
    operator_ids: &[String],
    rules: &PricingRules,
) -> anyhow::Result<Order> {
    let mut roll = rng.random_range(0..1000u32);
    let status = MIX
        .iter()
        .find(|(_, share)| {
            if roll < *share {
                true
            } else {
                roll -= share;
                false
            }
        })
        .map(|(s, _)| *s)
        .unwrap_or(OrderStatus::Shipped);
    // Open orders are recent; finished ones are spread over the year.
    let age = match status {
        OrderStatus::Pricing => rng.random_range(0..2 * MIN),
        OrderStatus::Confirmed => rng.random_range(10 * MIN..3 * DAY),
        OrderStatus::AwaitingConfirmation => rng.random_range(MIN..7 * DAY),
        OrderStatus::ManufacturingStarted | OrderStatus::Manufactured | OrderStatus::Packed => {
            rng.random_range(DAY..14 * DAY)
        }
        _ => rng.random_range(3 * DAY..365 * DAY),
    };
    let created = now - age;
    let (tenant, owner_name, owner_email, channel) =
        CUSTOMERS[rng.random_range(0..CUSTOMERS.len())];
    let material = rng.random_range(0..materials.len());
    let m = &materials[material];
    // A ring of 150–2500 mm³ of metal, a pendant up to twice that.
    let volume = rng.random_range(150.0..2500.0f64) * if rng.random_bool(0.2) { 2.0 } else { 1.0 };
    let area = volume * rng.random_range(1.8..3.2);
    let triangles = rng.random_range(2_000..400_000u64);
    let shells = if rng.random_bool(0.1) { 2 } else { 1 };
    let rule = if shells == 1 {
        price::MetalRule::SingleShell
    } else {
        price::MetalRule::AllShells
    };
    let (total, breakdown) = price::price(
        &PriceInput {
            volume_mm3: volume,
            area_mm2: area,
            shells,
            triangles,
            stones: 0,
            metal_rule: rule,
        },
        m,
        rules,
    )
    .map_err(|e| anyhow::anyhow!("seeding with material {}: {e}", m.code))?;
    let weight = breakdown.weight_g;
    let side = volume.cbrt() * 2.2;
    let geometry = GeometrySummary {
        format: "binary STL".into(),
        triangles,
        vertices: triangles / 2 + 2,
        volume_mm3: volume,
        area_mm2: area,
        bbox_mm: BBox {
            x: side,
            y: side,
            z: side * 0.4,
        },
        shells,
        watertight: status != OrderStatus::Rejected,
        boundary_edges: 0,
        nonmanifold_edges: 0,
        weight_g: weight,
        flipped_triangles: 0,
        warnings: vec![],
        metal_volume_mm3: Some(volume),
        stones: 0,
        metal_rule: rule,
    };
    let geometry_json = serde_json::to_string(&geometry).expect("json");
    let quote = Quote {
        total,
        breakdown,
        material: m.clone(),
    };
    let quote_json = serde_json::to_string(&quote).expect("json");
    let mut at = created;
    let mut steps = vec![];
    let mut confirmed = None;
    let mut taken_at = None;
    let mut operator = None;
    let mut tracking = None;
    let mut reject = None;
    let oi = rng.random_range(0..OPERATORS.len());
    for s in path_to(status) {
        let step = match s {
            OrderStatus::Pricing => 0,
            OrderStatus::AwaitingConfirmation | OrderStatus::Rejected => {
                rng.random_range(2_000..60_000)
            }
            OrderStatus::Confirmed | OrderStatus::Cancelled => rng.random_range(5 * MIN..DAY),
            OrderStatus::ManufacturingStarted => rng.random_range(2 * MIN..6 * HOUR),
            OrderStatus::Manufactured => rng.random_range(6 * HOUR..3 * DAY),
            OrderStatus::Packed => rng.random_range(HOUR..12 * HOUR),
            OrderStatus::Shipped => rng.random_range(HOUR..DAY),
        };
        at = (at + step).min(now);
        let (kind, name, actor_id, note): (&str, String, Option<String>, Option<String>) = match s {
            OrderStatus::Pricing | OrderStatus::Confirmed | OrderStatus::Cancelled => {
                ("customer", owner_name.to_string(), None, None)
            }
            OrderStatus::AwaitingConfirmation => ("system", "pricing".into(), None, None),
            OrderStatus::Rejected => {
                let r = REJECTIONS[rng.random_range(0..REJECTIONS.len())];
                reject = Some(r);
                ("system", "pricing".into(), None, Some(r.1.to_string()))
            }
            _ => {
                let t = if s == OrderStatus::Shipped {
                    let n = format!("RU{:09}", rng.random_range(0..1_000_000_000u64));
                    tracking = Some(n.clone());
                    Some(n)
                } else {
                    None
                };
                (
                    "operator",
                    OPERATORS[oi].to_string(),
                    Some(operator_ids[oi].clone()),
                    t,
                )
            }
        };
        if s == OrderStatus::Confirmed {
            confirmed = Some(at);
        }
        if s == OrderStatus::ManufacturingStarted {
            taken_at = Some(at);
            operator = Some((operator_ids[oi].clone(), OPERATORS[oi]));
        }
        steps.push((s, at, kind, name, actor_id, note));
    }
    let id_ts = uuid::Timestamp::from_unix(
        uuid::NoContext,
        (created / 1000) as u64,
        ((created % 1000) * 1_000_000) as u32,
    );
    let id = uuid::Uuid::new_v7(id_ts).to_string();
    let mut sha = String::with_capacity(64);
    for _ in 0..4 {
        let _ = write!(sha, "{:016x}", rng.random::<u64>());
    }
    let priced = (status != OrderStatus::Pricing && status != OrderStatus::Rejected).then(|| {
        (
            total.minor,
            weight,
            quote_json,
            total.currency.code().to_string(),
        )
    });
    Ok(Order {
        file_name: format!(
            "{}-{}.stl",
            MODELS[rng.random_range(0..MODELS.len())],
            &id[..8]
        ),
        id,
        tenant,
        owner_name,
        owner_email,
        channel,
        material,
        size_bytes: (triangles * 50 + 84) as i64,
        sha,
        status,
        priced,
        geometry_json: (status != OrderStatus::Pricing).then_some(geometry_json),
        reject,
        operator,
        taken_at,
        tracking,
        created,
        confirmed,
        updated: at,
        steps,
    })
}

/// A SQL literal: quoted text (quotes doubled), a number, or NULL.
fn text(out: &mut String, v: &str) {
    out.push('\'');
    for c in v.chars() {
        if c == '\'' {
            out.push('\'');
        }
        out.push(c);
    }
    out.push('\'');
}
fn opt_text(out: &mut String, v: Option<&str>) {
    match v {
        Some(v) => text(out, v),
        None => out.push_str("NULL"),
    }
}
fn opt_num<T: std::fmt::Display>(out: &mut String, v: Option<T>) {
    match v {
        Some(v) => {
            let _ = write!(out, "{v}");
        }
        None => out.push_str("NULL"),
    }
}

fn mes_orders_sql(batch: &[Order], materials: &[MaterialSnapshot]) -> String {
    let mut s = String::from(
        "INSERT INTO orders (id, tenant, owner_id, owner_name, owner_email, channel, material_code, material_json, \
         status, object_key, file_name, size_bytes, content_sha256, format, price_minor, currency, weight_g, quote_json, \
         geometry_json, reject_code, reject_reason, operator_id, operator_name, taken_at_ms, tracking_number, \
         created_at_ms, confirmed_at_ms, updated_at_ms) VALUES ",
    );
    for (i, o) in batch.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let m = &materials[o.material];
        s.push('(');
        text(&mut s, &o.id);
        s.push(',');
        text(&mut s, o.tenant);
        s.push_str(",NULL,");
        text(&mut s, o.owner_name);
        s.push(',');
        text(&mut s, o.owner_email);
        s.push(',');
        text(&mut s, o.channel);
        s.push(',');
        text(&mut s, &m.code);
        s.push(',');
        text(&mut s, &serde_json::to_string(m).expect("json"));
        s.push(',');
        text(&mut s, o.status.as_str());
        s.push(',');
        text(&mut s, &format!("models/{}", o.sha));
        s.push(',');
        text(&mut s, &o.file_name);
        let _ = write!(s, ",{},", o.size_bytes);
        text(&mut s, &o.sha);
        s.push_str(",'binary STL',");
        opt_num(&mut s, o.priced.as_ref().map(|p| p.0));
        s.push(',');
        opt_text(&mut s, o.priced.as_ref().map(|p| p.3.as_str()));
        s.push(',');
        opt_num(&mut s, o.priced.as_ref().map(|p| p.1));
        s.push(',');
        opt_text(&mut s, o.priced.as_ref().map(|p| p.2.as_str()));
        s.push(',');
        opt_text(&mut s, o.geometry_json.as_deref());
        s.push(',');
        opt_text(&mut s, o.reject.map(|r| r.0));
        s.push(',');
        opt_text(&mut s, o.reject.map(|r| r.1));
        s.push(',');
        opt_text(&mut s, o.operator.as_ref().map(|op| op.0.as_str()));
        s.push(',');
        opt_text(&mut s, o.operator.as_ref().map(|op| op.1));
        s.push(',');
        opt_num(&mut s, o.taken_at);
        s.push(',');
        opt_text(&mut s, o.tracking.as_deref());
        let _ = write!(s, ",{},", o.created);
        opt_num(&mut s, o.confirmed);
        let _ = write!(s, ",{})", o.updated);
    }
    s
}

fn crm_orders_sql(batch: &[Order], materials: &[MaterialSnapshot]) -> String {
    let mut s = String::from(
        "INSERT INTO orders (id, tenant, owner_id, owner_name, owner_email, channel, material, file_name, size_bytes, \
         status, price_minor, currency, quote_json, geometry_json, reject_code, reject_reason, tracking_number, \
         created_at_ms, updated_at_ms) VALUES ",
    );
    for (i, o) in batch.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push('(');
        text(&mut s, &o.id);
        s.push(',');
        text(&mut s, o.tenant);
        s.push_str(",NULL,");
        text(&mut s, o.owner_name);
        s.push(',');
        text(&mut s, o.owner_email);
        s.push(',');
        text(&mut s, o.channel);
        s.push(',');
        text(&mut s, &materials[o.material].code);
        s.push(',');
        text(&mut s, &o.file_name);
        let _ = write!(s, ",{},", o.size_bytes);
        text(&mut s, o.status.as_str());
        s.push(',');
        opt_num(&mut s, o.priced.as_ref().map(|p| p.0));
        s.push(',');
        opt_text(&mut s, o.priced.as_ref().map(|p| p.3.as_str()));
        s.push(',');
        opt_text(&mut s, o.priced.as_ref().map(|p| p.2.as_str()));
        s.push(',');
        opt_text(&mut s, o.geometry_json.as_deref());
        s.push(',');
        opt_text(&mut s, o.reject.map(|r| r.0));
        s.push(',');
        opt_text(&mut s, o.reject.map(|r| r.1));
        s.push(',');
        opt_text(&mut s, o.tracking.as_deref());
        let _ = write!(s, ",{},{})", o.created, o.updated);
    }
    s
}

/// MES's `status_history` and the CRM's `order_history` have the same shape
/// but for the CRM's `event_id`.
fn history_sql(table: &str, batch: &[Order], with_event: bool) -> Option<String> {
    let mut s = format!(
        "INSERT INTO {table} (order_id, status, at_ms, actor_kind, actor_name, actor_id, {}note) VALUES ",
        if with_event { "event_id, " } else { "" }
    );
    let mut first = true;
    for o in batch {
        for (st, at, kind, name, actor_id, note) in &o.steps {
            if !first {
                s.push(',');
            }
            first = false;
            s.push('(');
            text(&mut s, &o.id);
            s.push(',');
            text(&mut s, st.as_str());
            let _ = write!(s, ",{at},");
            text(&mut s, kind);
            s.push(',');
            text(&mut s, name);
            s.push(',');
            opt_text(&mut s, actor_id.as_deref());
            if with_event {
                s.push_str(",NULL");
            }
            s.push(',');
            opt_text(&mut s, note.as_deref());
            s.push(')');
        }
    }
    (!first).then_some(s)
}

async fn write(db: &Db, statements: Vec<String>) -> anyhow::Result<()> {
    let mut tx = db.begin_write().await?;
    if db.backend() == Backend::Postgres {
        // A seed can be run again; losing its last second to a crash is fine.
        sqlx::raw_sql("SET LOCAL synchronous_commit = off")
            .execute(&mut *tx)
            .await?;
    }
    for sql in statements {
        sqlx::raw_sql(&sql).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Writes `n` orders into both services' databases; `seed` makes the data repeatable.
pub async fn run(
    config: &crate::Config,
    n: u64,
    seed: u64,
    progress: impl Fn(u64, u64),
) -> anyhow::Result<Report> {
    adapters::private::create_dir(&config.data_dir)?;
    let crm_db = Db::connect(&config.crm_database_url(), crm::migrations()).await?;
    let mes_db = Db::connect(&config.mes_database_url(), mes::migrations()).await?;
    let materials = mes::materials::list(&mes_db).await?;
    anyhow::ensure!(
        !materials.is_empty(),
        "MES has no active materials to seed orders with"
    );
    let started = Instant::now();
    let now = domain::to_ms(domain::now());
    let mut rng = StdRng::seed_from_u64(seed);
    let operator_ids: Vec<String> = OPERATORS
        .iter()
        .map(|_| uuid::Uuid::from_u128(rng.random()).to_string())
        .collect();
    let mut report = Report {
        orders: 0,
        history_rows: 0,
        by_status: BTreeMap::new(),
        seconds: 0.0,
    };
    let mut done = 0u64;
    while done < n {
        let this = (n - done).min(ORDERS_PER_TX as u64) as usize;
        let orders: Vec<Order> = (0..this)
            .map(|_| {
                generate(
                    &mut rng,
                    now,
                    &materials,
                    &operator_ids,
                    &config.pricing.rules,
                )
            })
            .collect::<anyhow::Result<_>>()?;
        for o in &orders {
            *report.by_status.entry(o.status.to_string()).or_default() += 1;
            report.history_rows += o.steps.len() as u64;
        }
        let (mut crm_sql, mut mes_sql) = (vec![], vec![]);
        for chunk in orders.chunks(ROWS_PER_INSERT) {
            crm_sql.push(crm_orders_sql(chunk, &materials));
            mes_sql.push(mes_orders_sql(chunk, &materials));
        }
        for chunk in orders.chunks(ROWS_PER_INSERT) {
            crm_sql.extend(history_sql("order_history", chunk, true));
            mes_sql.extend(history_sql("status_history", chunk, false));
        }
        let (c, m) = tokio::join!(write(&crm_db, crm_sql), write(&mes_db, mes_sql));
        c?;
        m?;
        done += this as u64;
        progress(done, n);
    }
    if mes_db.backend() == Backend::Postgres {
        // Fresh statistics, so the planner knows how few orders are CONFIRMED.
        sqlx::raw_sql("ANALYZE orders; ANALYZE status_history")
            .execute(mes_db.pool())
            .await?;
        sqlx::raw_sql("ANALYZE orders; ANALYZE order_history")
            .execute(crm_db.pool())
            .await?;
    }
    report.orders = done;
    report.seconds = started.elapsed().as_secs_f64();
    crm_db.close().await;
    mes_db.close().await;
    Ok(report)
}
