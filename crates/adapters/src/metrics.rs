//! Prometheus metrics: one registry per process (per [`Metrics`] handle, so
//! several applications in one test process never mix their numbers), every
//! family named by Prometheus conventions (`alexandrite_` prefix, `_total`
//! counters, base units: seconds and bytes).
//!
//! Counters and histograms are recorded where things happen (HTTP middleware,
//! the bus, the pricing workers, caches); gauges that need a query (orders by
//! status, SLA standing, outbox backlog, queue depths, pool use) are set at
//! scrape time by whoever serves `/metrics` (see [`Metrics::encode`]).

use crate::bus::{Bus, DeadLetter, DeliveryError, Handler, QueueSpec};
use async_trait::async_trait;
use domain::events::Envelope;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

/// A label set: `(name, value)` pairs.
pub type Labels = Vec<(&'static str, String)>;
type Counters = Family<Labels, Counter>;
type Gauges = Family<Labels, Gauge<f64, AtomicU64>>;
type Histograms = Family<Labels, Histogram, fn() -> Histogram>;

/// The content type of [`Metrics::encode`]'s output (Prometheus text 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Latency buckets for HTTP requests and event handling (seconds).
const LATENCY_BUCKETS: [f64; 12] = [
    0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Pricing takes milliseconds for a ring, seconds for the largest model allowed.
const PRICING_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Queue waits: from an event's occurrence to its delivery (seconds).
const LAG_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0,
];

fn latency() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}
fn pricing() -> Histogram {
    Histogram::new(PRICING_BUCKETS)
}
fn lag() -> Histogram {
    Histogram::new(LAG_BUCKETS)
}
/// Model files: 1 KiB … 256 MiB, ×4 per bucket.
fn model_bytes() -> Histogram {
    Histogram::new((0..10).map(|i| 1024.0 * 4f64.powi(i)))
}
/// Lead times: a second … a month.
fn lead() -> Histogram {
    Histogram::new([
        1.0, 10.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 43200.0, 86400.0, 172800.0, 259200.0,
        432000.0, 604800.0, 1209600.0, 2592000.0,
    ])
}
/// Triangle counts: 100 … 2.6 M, ×4 per bucket.
fn triangles() -> Histogram {
    Histogram::new((0..10).map(|i| 100.0 * 4f64.powi(i)))
}

struct Inner {
    registry: Registry,
    declared: Declared,
    /// Held while scrape-time gauges are reset and refilled, so a concurrent
    /// scrape never sees a half-filled family.
    scrape: tokio::sync::Mutex<()>,

    http_requests: Counters,
    http_errors: Counters,
    http_duration: Histograms,

    events_published: Counters,
    events_publish_failures: Counters,
    events_consumed: Counters,
    events_acked: Counters,
    events_rejected: Counters,
    events_retried: Counters,
    events_redelivered: Counters,
    events_dead_lettered: Counters,
    event_handling: Histograms,
    event_lag: Histograms,

    queue_depth: Gauges,
    queue_oldest: Gauges,
    dead_letters: Gauges,
    outbox_backlog: Gauges,
    outbox_oldest: Gauges,

    pricing_duration: Histograms,
    pricing_model_bytes: Histograms,
    pricing_triangles: Histograms,
    pricing_in_flight: Gauges,
    pricing_workers: Gauges,

    orders: Gauges,
    lead_time: Histograms,
    orders_oldest: Gauges,
    orders_at_risk: Gauges,
    orders_overdue: Gauges,
    sla_limit: Gauges,
    sla_announced: Counters,

    reconcile_runs: Counters,
    reconcile_differences: Gauges,

    cache_hits: Counters,
    cache_misses: Counters,

    throttle_refusals: Counters,
    throttle_degraded: Counters,

    notifications_sent: Counters,
    notifications_failed: Counters,
    notifications_abandoned: Counters,

    db_connections: Gauges,
    db_max_connections: Gauges,

    task_restarts: Counters,
    uploads_removed: Counters,
}

/// A process's metrics. Cheap to clone; clones share the registry.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Every family's exposed name, type and help: the encoder leaves out
/// families without samples, and a scraper should still see them declared.
type Declared = Vec<(String, &'static str, String)>;
type Reg = (Registry, Declared);

fn declare(r: &mut Reg, name: &str, kind: &'static str, help: &str) {
    let suffix = if kind == "counter" { "_total" } else { "" };
    r.1.push((
        format!("alexandrite_{name}{suffix}"),
        kind,
        help.trim_end_matches('.').to_string(),
    ));
}
fn counter(r: &mut Reg, name: &str, help: &str) -> Counters {
    let f = Counters::default();
    r.0.register(name, help.trim_end_matches('.'), f.clone());
    declare(r, name, "counter", help);
    f
}
fn gauge(r: &mut Reg, name: &str, help: &str) -> Gauges {
    let f = Gauges::default();
    r.0.register(name, help.trim_end_matches('.'), f.clone());
    declare(r, name, "gauge", help);
    f
}
fn histogram(r: &mut Reg, name: &str, help: &str, make: fn() -> Histogram) -> Histograms {
    let f = Histograms::new_with_constructor(make);
    r.0.register(name, help.trim_end_matches('.'), f.clone());
    declare(r, name, "histogram", help);
    f
}

/// One label set from pairs.
fn l<const N: usize>(pairs: [(&'static str, &str); N]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

/// Orders of one status in one service's database, for the gauges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusStats {
    pub status: String,
    pub count: i64,
    /// When the order longest in this status entered it.
    pub oldest_entered_ms: Option<i64>,
    pub at_risk: i64,
    pub overdue: i64,
}

/// One queue of the bus, for the gauges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub queue: String,
    pub depth: i64,
    /// Age of the oldest waiting message, where the bus can tell.
    pub oldest_age_ms: Option<i64>,
    pub dead_letters: i64,
}

impl Metrics {
    /// A fresh registry with every family of the platform registered.
    pub fn new() -> Metrics {
        let mut reg: Reg = (Registry::with_prefix("alexandrite"), Vec::new());
        let r = &mut reg;
        let inner = Inner {
            http_requests: counter(
                r,
                "http_requests",
                "HTTP requests answered, by route template, method and status.",
            ),
            http_errors: counter(
                r,
                "http_errors",
                "HTTP requests answered with a 5xx status.",
            ),
            http_duration: histogram(
                r,
                "http_request_duration_seconds",
                "Time to answer an HTTP request.",
                latency,
            ),

            events_published: counter(
                r,
                "events_published",
                "Events the bus accepted (durable in every bound queue), by type.",
            ),
            events_publish_failures: counter(
                r,
                "events_publish_failures",
                "Publish attempts the bus refused or could not confirm, by type.",
            ),
            events_consumed: counter(
                r,
                "events_consumed",
                "Deliveries handed to a consumer, by queue and type.",
            ),
            events_acked: counter(r, "events_acked", "Deliveries handled and acknowledged."),
            events_rejected: counter(
                r,
                "events_rejected",
                "Deliveries a consumer refused as poison (dead-lettered at once).",
            ),
            events_retried: counter(
                r,
                "events_retried",
                "Deliveries that failed and were returned to their queue for another try.",
            ),
            events_redelivered: counter(
                r,
                "events_redelivered",
                "Deliveries of a message that had been delivered before.",
            ),
            events_dead_lettered: counter(
                r,
                "events_dead_lettered",
                "Messages moved to the dead letters, by queue and reason.",
            ),
            event_handling: histogram(
                r,
                "event_handling_duration_seconds",
                "Time a consumer spent on one delivery.",
                latency,
            ),
            event_lag: histogram(
                r,
                "event_delivery_lag_seconds",
                "Time from an event's occurrence to its delivery to a consumer.",
                lag,
            ),

            queue_depth: gauge(r, "bus_queue_depth", "Messages waiting in a queue."),
            queue_oldest: gauge(
                r,
                "bus_queue_oldest_message_age_seconds",
                "Age of the oldest message waiting in a queue (embedded bus).",
            ),
            dead_letters: gauge(r, "bus_dead_letters", "Messages in a queue's dead letters."),
            outbox_backlog: gauge(
                r,
                "outbox_backlog",
                "Outbox rows not yet published, by service.",
            ),
            outbox_oldest: gauge(
                r,
                "outbox_oldest_age_seconds",
                "Age of the oldest unpublished outbox row (0 when empty).",
            ),

            pricing_duration: histogram(
                r,
                "pricing_duration_seconds",
                "Time to measure and price one model, by outcome.",
                pricing,
            ),
            pricing_model_bytes: histogram(
                r,
                "pricing_model_size_bytes",
                "Size of the model files priced.",
                model_bytes,
            ),
            pricing_triangles: histogram(
                r,
                "pricing_model_triangles",
                "Triangles of the models priced.",
                triangles,
            ),
            pricing_in_flight: gauge(
                r,
                "pricing_jobs_in_flight",
                "Pricing jobs being worked on now.",
            ),
            pricing_workers: gauge(
                r,
                "pricing_workers",
                "Pricing jobs this process handles at once.",
            ),

            orders: gauge(
                r,
                "orders",
                "Orders in each status, by the service whose database was counted.",
            ),
            lead_time: histogram(
                r,
                "order_lead_time_seconds",
                "Time from an order's upload until it reached a status (observed as the change is published).",
                lead,
            ),
            orders_oldest: gauge(
                r,
                "orders_oldest_age_seconds",
                "How long the order longest in a status has been in it.",
            ),
            orders_at_risk: gauge(
                r,
                "orders_at_risk",
                "Orders near their SLA deadline in their current status (not yet past it).",
            ),
            orders_overdue: gauge(
                r,
                "orders_overdue",
                "Orders past their SLA deadline in their current status.",
            ),
            sla_limit: gauge(
                r,
                "sla_limit_seconds",
                "The SLA limit of each status that has one.",
            ),
            sla_announced: counter(
                r,
                "sla_overdue_announced",
                "Orders announced to managers as overdue (once per order and status).",
            ),

            reconcile_runs: counter(
                r,
                "reconcile_runs",
                "Comparisons of CRM's and MES's views of open orders.",
            ),
            reconcile_differences: gauge(
                r,
                "reconcile_differences",
                "Orders CRM and MES disagreed about at the last comparison.",
            ),

            cache_hits: counter(
                r,
                "cache_hits",
                "Cache lookups answered from the cache, by cache.",
            ),
            cache_misses: counter(
                r,
                "cache_misses",
                "Cache lookups that had to go to the source, by cache.",
            ),

            throttle_refusals: counter(
                r,
                "throttle_refusals",
                "Attempts answered 429 by a throttle (too many failures), by limit.",
            ),
            throttle_degraded: counter(
                r,
                "throttle_degraded",
                "Throttle operations counted in this process only because the shared cache failed.",
            ),

            notifications_sent: counter(
                r,
                "notifications_sent",
                "Notifications delivered (e-mail handed to the transport, webhook answered 2xx), by channel.",
            ),
            notifications_failed: counter(
                r,
                "notifications_failed",
                "Notification attempts that failed (to be retried or abandoned), by channel.",
            ),
            notifications_abandoned: counter(
                r,
                "notifications_abandoned",
                "Notifications given up, by channel and reason (max_attempts, invalid_address, permanent_failure, unsendable, …).",
            ),

            db_connections: gauge(
                r,
                "db_pool_connections",
                "Database pool connections, by service and state (idle, in_use).",
            ),
            db_max_connections: gauge(
                r,
                "db_pool_max_connections",
                "The most connections a service's pool opens.",
            ),

            task_restarts: counter(
                r,
                "task_restarts",
                "Background tasks (relays, listeners, sweeps) restarted after a panic or an unexpected end, by task.",
            ),

            uploads_removed: counter(
                r,
                "uploads_removed",
                "Objects of direct uploads that expired without becoming an order, removed by MES's sweep.",
            ),

            registry: reg.0,
            declared: reg.1,
            scrape: tokio::sync::Mutex::new(()),
        };
        Metrics(Arc::new(inner))
    }

    // --- HTTP ---

    /// One answered HTTP request; `route` is the route template (never the raw path).
    pub fn http_request(&self, service: &str, method: &str, route: &str, status: u16, secs: f64) {
        let s = status.to_string();
        let i = &self.0;
        i.http_requests
            .get_or_create(&l([
                ("service", service),
                ("method", method),
                ("route", route),
                ("status", &s),
            ]))
            .inc();
        if status >= 500 {
            i.http_errors
                .get_or_create(&l([
                    ("service", service),
                    ("method", method),
                    ("route", route),
                    ("status", &s),
                ]))
                .inc();
        }
        i.http_duration
            .get_or_create(&l([
                ("service", service),
                ("method", method),
                ("route", route),
            ]))
            .observe(secs);
    }

    // --- the bus ---

    pub fn event_published(&self, kind: &str) {
        self.0
            .events_published
            .get_or_create(&l([("type", kind)]))
            .inc();
    }

    pub fn event_publish_failed(&self, kind: &str) {
        self.0
            .events_publish_failures
            .get_or_create(&l([("type", kind)]))
            .inc();
    }

    /// A delivery handed to a consumer, and the event's age in milliseconds.
    pub fn event_consumed(&self, queue: &str, kind: &str, age_ms: i64) {
        self.0
            .events_consumed
            .get_or_create(&l([("queue", queue), ("type", kind)]))
            .inc();
        self.0
            .event_lag
            .get_or_create(&l([("queue", queue)]))
            .observe(age_ms.max(0) as f64 / 1000.0);
    }

    /// A delivery of a message that had been delivered before (the bus knows).
    pub fn event_redelivered(&self, queue: &str, kind: &str) {
        self.0
            .events_redelivered
            .get_or_create(&l([("queue", queue), ("type", kind)]))
            .inc();
    }

    /// How a delivery ended: `Ok` acked, `Err(true)` rejected as poison,
    /// `Err(false)` failed (retried or, at the limit, dead-lettered).
    pub fn event_settled(&self, queue: &str, kind: &str, outcome: Settled, secs: f64) {
        let labels = l([("queue", queue), ("type", kind)]);
        match outcome {
            Settled::Acked => self.0.events_acked.get_or_create(&labels).inc(),
            Settled::Rejected => self.0.events_rejected.get_or_create(&labels).inc(),
            Settled::Retried => self.0.events_retried.get_or_create(&labels).inc(),
        };
        self.0
            .event_handling
            .get_or_create(&l([("queue", queue)]))
            .observe(secs);
    }

    /// A message moved to the dead letters; `reason`: `rejected`,
    /// `delivery_limit` or `unreadable`.
    pub fn event_dead_lettered(&self, queue: &str, reason: &str) {
        self.0
            .events_dead_lettered
            .get_or_create(&l([("queue", queue), ("reason", reason)]))
            .inc();
    }

    /// An order reached `status` `secs` after it was uploaded.
    pub fn order_reached(&self, status: &str, secs: f64) {
        self.0
            .lead_time
            .get_or_create(&l([("status", status)]))
            .observe(secs.max(0.0));
    }

    // --- pricing ---

    /// One pricing job done; `outcome`: `priced`, `rejected` (the model cannot
    /// be made) or `failed` (it will be retried).
    pub fn pricing_done(&self, outcome: &str, secs: f64) {
        self.0
            .pricing_duration
            .get_or_create(&l([("outcome", outcome)]))
            .observe(secs);
    }

    /// A model the pricing workers read: its size and triangle count.
    pub fn pricing_model(&self, bytes: u64, triangles: Option<u64>) {
        self.0
            .pricing_model_bytes
            .get_or_create(&vec![])
            .observe(bytes as f64);
        if let Some(t) = triangles {
            self.0
                .pricing_triangles
                .get_or_create(&vec![])
                .observe(t as f64);
        }
    }

    /// A pricing job started: counted in flight until the guard is dropped.
    pub fn pricing_job(&self) -> InFlight {
        let gauge = self.0.pricing_in_flight.get_or_create_owned(&vec![]);
        gauge.inc_by(1.0);
        InFlight(gauge)
    }

    pub fn pricing_workers(&self, n: usize) {
        self.0.pricing_workers.get_or_create(&vec![]).set(n as f64);
    }

    // --- caches (any cache port calls these) ---

    /// A lookup answered from the cache named `cache` (e.g. `queue`, `measurements`).
    pub fn cache_hit(&self, cache: &str) {
        self.0
            .cache_hits
            .get_or_create(&l([("cache", cache)]))
            .inc();
    }

    /// A lookup the cache named `cache` could not answer.
    pub fn cache_miss(&self, cache: &str) {
        self.0
            .cache_misses
            .get_or_create(&l([("cache", cache)]))
            .inc();
    }

    /// A lookup, hit or miss.
    pub fn cache_lookup(&self, cache: &str, hit: bool) {
        if hit {
            self.cache_hit(cache)
        } else {
            self.cache_miss(cache)
        }
    }

    // --- throttles (failed logins, failed API keys) ---

    /// An attempt refused because `limit` (e.g. `login_account`) is exhausted.
    pub fn throttle_refused(&self, limit: &str) {
        self.0
            .throttle_refusals
            .get_or_create(&l([("limit", limit)]))
            .inc();
    }

    /// A throttle fell back to its own process's count (the shared cache failed).
    pub fn throttle_degraded(&self) {
        self.0.throttle_degraded.get_or_create(&vec![]).inc();
    }

    // --- supervised background tasks ---

    /// A supervised task is running: its counter is exported from 0.
    pub fn task_restarts_declare(&self, task: &str) {
        let _ = self.0.task_restarts.get_or_create(&l([("task", task)]));
    }

    /// A supervised task ended and is being restarted.
    pub fn task_restarted(&self, task: &str) {
        self.0
            .task_restarts
            .get_or_create(&l([("task", task)]))
            .inc();
    }

    /// Objects of expired, unused direct uploads removed by one sweep.
    pub fn uploads_removed(&self, n: usize) {
        self.0
            .uploads_removed
            .get_or_create(&vec![])
            .inc_by(n as u64);
    }

    // --- notifications ---

    /// One notification attempt's outcome on `channel` ("email", "webhook").
    pub fn notification(&self, channel: &str, outcome: Notified) {
        let (family, labels) = match outcome {
            Notified::Sent => (&self.0.notifications_sent, l([("channel", channel)])),
            Notified::Failed => (&self.0.notifications_failed, l([("channel", channel)])),
            Notified::Abandoned(reason) => (
                &self.0.notifications_abandoned,
                l([("channel", channel), ("reason", reason)]),
            ),
        };
        family.get_or_create(&labels).inc();
    }

    // --- reconciliation and SLA ---

    pub fn reconciled(&self, differences: usize) {
        self.0.reconcile_runs.get_or_create(&vec![]).inc();
        self.0
            .reconcile_differences
            .get_or_create(&vec![])
            .set(differences as f64);
    }

    /// An order announced to managers as overdue in `status`.
    pub fn sla_announced(&self, status: &str) {
        self.0
            .sla_announced
            .get_or_create(&l([("status", status)]))
            .inc();
    }

    // --- scrape time ---

    /// Sets the gauges that describe state (called by the `/metrics` handler,
    /// inside [`Metrics::scrape`]).
    pub fn set_orders(&self, service: &str, now_ms: i64, stats: &[StatusStats]) {
        let i = &self.0;
        for s in stats {
            let labels = l([("service", service), ("status", &s.status)]);
            i.orders.get_or_create(&labels).set(s.count as f64);
            let oldest = s
                .oldest_entered_ms
                .map(|t| (now_ms - t).max(0) as f64 / 1000.0)
                .unwrap_or(0.0);
            i.orders_oldest.get_or_create(&labels).set(oldest);
            i.orders_at_risk
                .get_or_create(&labels)
                .set(s.at_risk as f64);
            i.orders_overdue
                .get_or_create(&labels)
                .set(s.overdue as f64);
        }
    }

    pub fn set_sla_limits(&self, limits: &[(&str, i64)]) {
        for (status, ms) in limits {
            self.0
                .sla_limit
                .get_or_create(&l([("status", status)]))
                .set(*ms as f64 / 1000.0);
        }
    }

    pub fn set_outbox(&self, service: &str, now_ms: i64, backlog: i64, oldest_ms: Option<i64>) {
        let labels = l([("service", service)]);
        self.0
            .outbox_backlog
            .get_or_create(&labels)
            .set(backlog as f64);
        let age = oldest_ms
            .map(|t| (now_ms - t).max(0) as f64 / 1000.0)
            .unwrap_or(0.0);
        self.0.outbox_oldest.get_or_create(&labels).set(age);
    }

    pub fn set_queues(&self, queues: &[QueueStats]) {
        for q in queues {
            let labels = l([("queue", &q.queue)]);
            self.0
                .queue_depth
                .get_or_create(&labels)
                .set(q.depth as f64);
            self.0
                .dead_letters
                .get_or_create(&labels)
                .set(q.dead_letters as f64);
            if let Some(age) = q.oldest_age_ms {
                self.0
                    .queue_oldest
                    .get_or_create(&labels)
                    .set(age.max(0) as f64 / 1000.0);
            }
        }
    }

    pub fn set_pool(&self, service: &str, size: u32, idle: usize, max: u32) {
        let idle = idle as f64;
        let size = size as f64;
        let i = &self.0;
        i.db_connections
            .get_or_create(&l([("service", service), ("state", "idle")]))
            .set(idle);
        i.db_connections
            .get_or_create(&l([("service", service), ("state", "in_use")]))
            .set((size - idle).max(0.0));
        i.db_max_connections
            .get_or_create(&l([("service", service)]))
            .set(max as f64);
    }

    /// Refreshes the scrape-time gauges with `fill` (which queries the
    /// databases and the bus) and encodes every family. Gauges of label sets
    /// that are gone (a status no order is in any more) are cleared first.
    pub async fn scrape<F, Fut>(&self, fill: F) -> String
    where
        F: FnOnce(Metrics) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let _one = self.0.scrape.lock().await;
        let i = &self.0;
        for g in [
            &i.queue_depth,
            &i.queue_oldest,
            &i.dead_letters,
            &i.outbox_backlog,
            &i.outbox_oldest,
            &i.orders,
            &i.orders_oldest,
            &i.orders_at_risk,
            &i.orders_overdue,
            &i.db_connections,
            &i.db_max_connections,
        ] {
            g.clear();
        }
        fill(self.clone()).await;
        self.encode()
    }

    /// Every family in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_text::encode(&mut out, &self.0.registry).expect("writing to a String");
        for (name, kind, help) in &self.0.declared {
            if !out.contains(&format!("# TYPE {name} ")) {
                out += &format!("# HELP {name} {help}.\n# TYPE {name} {kind}\n");
            }
        }
        out
    }
}

/// A bus that counts what passes through it: events published (and refused),
/// deliveries consumed, acked, rejected and retried, handling time and the
/// wait from an event's occurrence to its delivery. Redeliveries and dead
/// letters at the delivery limit are counted by the buses themselves, which
/// alone know the delivery count ([`crate::bus::open_with`]).
pub struct MeteredBus {
    inner: Arc<dyn Bus>,
    metrics: Metrics,
}

impl MeteredBus {
    pub fn wrap(inner: Arc<dyn Bus>, metrics: Metrics) -> Arc<dyn Bus> {
        Arc::new(MeteredBus { inner, metrics })
    }
}

/// Milliseconds since an event occurred (0 if its time cannot be read).
fn age_ms(env: &Envelope) -> i64 {
    time::OffsetDateTime::parse(
        &env.occurred_at,
        &time::format_description::well_known::Rfc3339,
    )
    .map(|t| domain::to_ms(domain::now()) - domain::to_ms(t))
    .unwrap_or(0)
}

/// The status an order reached, for the events that announce one.
fn reached(env: &Envelope) -> Option<&str> {
    use domain::events::{
        Event, OrderCancelled, OrderConfirmed, OrderPriced, OrderRejected, OrderStatusChanged,
    };
    let k = env.kind.as_str();
    if k == OrderStatusChanged::TYPE {
        return env.payload.get("status")?.as_str();
    }
    [
        (OrderPriced::TYPE, "AWAITING_CONFIRMATION"),
        (OrderRejected::TYPE, "REJECTED"),
        (OrderConfirmed::TYPE, "CONFIRMED"),
        (OrderCancelled::TYPE, "CANCELLED"),
    ]
    .into_iter()
    .find(|(t, _)| *t == k)
    .map(|(_, s)| s)
}

struct MeteredHandler {
    queue: &'static str,
    inner: Arc<dyn Handler>,
    metrics: Metrics,
}

#[async_trait]
impl Handler for MeteredHandler {
    async fn handle(&self, env: Envelope) -> Result<(), DeliveryError> {
        let (queue, kind) = (self.queue, env.kind.clone());
        self.metrics.event_consumed(queue, &kind, age_ms(&env));
        let started = std::time::Instant::now();
        let result = self.inner.handle(env).await;
        let outcome = match &result {
            Ok(()) => Settled::Acked,
            Err(DeliveryError::Reject(_)) => Settled::Rejected,
            Err(DeliveryError::Retry(_)) => Settled::Retried,
        };
        self.metrics
            .event_settled(queue, &kind, outcome, started.elapsed().as_secs_f64());
        if outcome == Settled::Rejected {
            self.metrics.event_dead_lettered(queue, "rejected");
        }
        result
    }
}

#[async_trait]
impl Bus for MeteredBus {
    async fn declare(&self, spec: &QueueSpec) -> anyhow::Result<()> {
        self.inner.declare(spec).await
    }
    async fn publish(&self, env: &Envelope) -> anyhow::Result<()> {
        let result = self.inner.publish(env).await;
        match &result {
            Ok(()) => {
                self.metrics.event_published(&env.kind);
                if let (Some(status), Some(minted)) = (reached(env), env.order_id.minted_at_ms()) {
                    let at = domain::to_ms(domain::now()) - age_ms(env);
                    self.metrics
                        .order_reached(status, (at - minted) as f64 / 1000.0);
                }
            }
            Err(_) => self.metrics.event_publish_failed(&env.kind),
        }
        result
    }
    async fn consume(
        &self,
        queue: &'static str,
        concurrency: usize,
        handler: Arc<dyn Handler>,
    ) -> anyhow::Result<()> {
        let handler = Arc::new(MeteredHandler {
            queue,
            inner: handler,
            metrics: self.metrics.clone(),
        });
        self.inner.consume(queue, concurrency, handler).await
    }
    async fn shutdown(&self) {
        self.inner.shutdown().await
    }
    async fn dead_letters(&self) -> anyhow::Result<Vec<DeadLetter>> {
        self.inner.dead_letters().await
    }
    async fn replay(&self, id: i64) -> anyhow::Result<bool> {
        self.inner.replay(id).await
    }
    async fn depths(&self) -> anyhow::Result<Vec<(String, i64)>> {
        self.inner.depths().await
    }
    async fn stats(&self) -> anyhow::Result<Vec<QueueStats>> {
        self.inner.stats().await
    }
}

/// Counts one job in flight while it lives.
pub struct InFlight(Gauge<f64, AtomicU64>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec_by(1.0);
    }
}

/// What became of one notification attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notified {
    Sent,
    /// Failed; another attempt is due later.
    Failed,
    /// Failed for the last time, and why (a short snake_case word).
    Abandoned(&'static str),
}

/// How a delivery ended, for [`Metrics::event_settled`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    Acked,
    Rejected,
    Retried,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_end_in_total_and_histograms_have_their_buckets() {
        let m = Metrics::new();
        m.http_request("crm", "GET", "/api/v1/orders/{id}", 200, 0.003);
        m.http_request("crm", "GET", "/api/v1/orders/{id}", 503, 0.2);
        m.pricing_done("priced", 0.004);
        let text = m.encode();
        assert!(
            text.contains(r#"alexandrite_http_requests_total{service="crm",method="GET",route="/api/v1/orders/{id}",status="200"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"alexandrite_http_errors_total{service="crm",method="GET",route="/api/v1/orders/{id}",status="503"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"alexandrite_pricing_duration_seconds_bucket{le="0.005",outcome="priced"} 1"#
            ) || text.contains(
                r#"alexandrite_pricing_duration_seconds_bucket{outcome="priced",le="0.005"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains("# TYPE alexandrite_pricing_duration_seconds histogram"),
            "{text}"
        );
        assert!(!text.contains("summary"), "{text}");
        assert!(
            text.contains("# TYPE alexandrite_events_dead_lettered_total counter\n"),
            "a family without samples is still declared: {text}"
        );
    }

    #[tokio::test]
    async fn a_scrape_forgets_label_sets_that_are_gone() {
        let m = Metrics::new();
        let stats = |status: &str| StatusStats {
            status: status.into(),
            count: 2,
            oldest_entered_ms: Some(0),
            at_risk: 0,
            overdue: 1,
        };
        let text = m
            .scrape(|m| async move { m.set_orders("crm", 10_000, &[stats("PRICING")]) })
            .await;
        assert!(
            text.contains(r#"alexandrite_orders{service="crm",status="PRICING"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"alexandrite_orders_oldest_age_seconds{service="crm",status="PRICING"} 10"#
            ),
            "{text}"
        );
        let text = m
            .scrape(|m| async move { m.set_orders("crm", 10_000, &[stats("CONFIRMED")]) })
            .await;
        assert!(!text.contains(r#"status="PRICING""#), "{text}");
        assert!(
            text.contains(r#"alexandrite_orders_overdue{service="crm",status="CONFIRMED"} 1"#),
            "{text}"
        );
    }
}
