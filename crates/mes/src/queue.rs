//! The operators' queue: confirmed orders newest first, taken into work by
//! exactly one operator, then made, packed and shipped.

use crate::MesState;
use crate::orders::{self, COLUMNS, MesOrder};
use adapters::{Cache, Db, outbox};
use bytes::Bytes;
use domain::events::{Actor, Envelope, OrderStatusChanged};
use domain::sla::SlaPolicy;
use domain::{Caller, OrderId, OrderStatus, Role};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use sqlx::{AnyPool, Row};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::broadcast;

/// Why an operator's action was refused.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("order not found")]
    NotFound,
    #[error("only operators can do this")]
    NotOperator,
    #[error("already taken by {name}")]
    AlreadyTaken { name: String, at: Option<String> },
    #[error("this order is assigned to {0}")]
    NotYours(String),
    #[error(transparent)]
    Transition(#[from] domain::TransitionError),
    #[error("{0} is not a production status: use MANUFACTURED, PACKED or SHIPPED")]
    NotProductionStatus(OrderStatus),
    #[error("a tracking number is required to ship")]
    TrackingRequired,
    #[error(
        "a tracking number is 1 to {} letters, digits, spaces and - / . characters",
        web::text::MAX_TRACKING
    )]
    BadTracking,
    #[error("only the operator this order is assigned to can release it")]
    ReleaseNotOperator,
    #[error("only managers can reassign orders")]
    NotManager,
    #[error("say why (a reason of 1 to 500 characters)")]
    ReasonRequired,
    #[error("order is {0}: only orders in work can be reassigned")]
    NotInWork(OrderStatus),
    #[error("the order is already assigned to {0}")]
    AlreadyAssigned(String),
    #[error(
        "no operator {0} is known to MES: name the operator (operator_name) or pick one who has worked here"
    )]
    UnknownOperator(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for QueueError {
    fn from(e: sqlx::Error) -> Self {
        QueueError::Internal(e.into())
    }
}

/// Filters on the queue. Every combination is served by an index (see docs/queue.md).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Filter {
    pub material: Option<String>,
    /// Only orders with at least this much metal (grams).
    pub min_weight_g: Option<f64>,
    /// Only orders priced at least this (minor units).
    pub min_price_minor: Option<i64>,
}

impl Filter {
    /// The filter's part of a cache key.
    fn key(&self, limit: i64) -> String {
        format!(
            "m={}&w={}&p={}&l={limit}",
            self.material.as_deref().unwrap_or(""),
            self.min_weight_g.map(|w| w.to_string()).unwrap_or_default(),
            self.min_price_minor
                .map(|p| p.to_string())
                .unwrap_or_default()
        )
    }
}

/// A page of the queue.
#[derive(Debug, Serialize, Deserialize)]
pub struct QueuePage {
    pub orders: Vec<MesOrder>,
    pub next_cursor: Option<String>,
}

/// The first page's size unless the caller asks for another.
pub const DEFAULT_LIMIT: i64 = 50;
/// The cache's generation counter: every change to the queue bumps it, which
/// invalidates every cached first page at once (each is stored under its generation).
const GEN_KEY: &str = "mes:queue:gen";
/// How long a cached first page lives even if nothing invalidates it (a bound
/// on staleness should an invalidation be lost while the cache was unreachable).
const PAGE_TTL: std::time::Duration = std::time::Duration::from_secs(15);
/// Where changes to the queue are published (to every MES process).
pub const CHANNEL: &str = "mes:queue:changes";
/// The read-your-writes key of the queue itself: the cache is filled from the
/// replica only once it has replayed this process's last change to the queue.
const QUEUE_MARK: &str = "mes-queue";

fn page_key(generation: i64, filter: &Filter, limit: i64) -> String {
    format!("mes:queue:first:{generation}:{}", filter.key(limit))
}

/// What happened to an order, as every open console hears it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Change {
    /// `confirmed`, `taken`, `released`, `reassigned` or `cancelled`.
    pub kind: String,
    pub order_id: OrderId,
    /// The operator who has the order now (taken, reassigned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    pub at: String,
    /// The MES process that made the change (on the channel between
    /// processes only; consoles never see it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

/// Where a first page came from (the `x-cache` header says it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    Hit,
    Miss,
    /// The cache could not be asked: read from the database.
    Bypass,
}

impl CacheOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheOutcome::Hit => "hit",
            CacheOutcome::Miss => "miss",
            CacheOutcome::Bypass => "bypass",
        }
    }
}

/// How long this process serves a first page from its own memory before one
/// request reads it again (the others are served the kept page meanwhile):
/// a bound on staleness should a change be published while the subscription
/// was away, or be lost on its way.
const NEAR_TTL: std::time::Duration = std::time::Duration::from_secs(1);
/// A kept page older than this is never served: the next request waits for a
/// fresh one (the refresh after [`NEAR_TTL`] failed or never ran).
const NEAR_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(5);

/// This process's copy of the first pages, in front of the shared cache (the
/// near cache). A refresh of the first page is the hottest request there is —
/// every operator, all day — and asking Redis twice per refresh costs more
/// than the rest of the request.
///
/// Every change to the queue takes a ticket, after it is committed (and after
/// the shared cache's generation moved on), so a page read when tickets up to
/// `t` had been handed out shows every one of those changes; it is kept tagged
/// `t`. A page is served while its tag is at least the floor:
/// * a change made in this process reads the new first page itself, keeps
///   it, and only then raises the floor to its ticket — meanwhile operators
///   are served the page from before (as if they had refreshed a moment
///   earlier), and the operator who made the change, whose answer waits for
///   it, never sees the page without it;
/// * a change heard from another process (publish/subscribe), a subscription
///   that (re)starts and a change whose page could not be read raise the
///   floor at once: the next request reads the page again, one at a time.
#[derive(Default)]
struct Near {
    /// Tickets handed out to changes so far.
    tickets: AtomicU64,
    /// Pages tagged below this are not served.
    floor: AtomicU64,
    /// Subscribed to the changes channel. Without it the other processes'
    /// changes would go unheard, so the near cache is not used.
    listening: AtomicBool,
    pages: Mutex<HashMap<String, NearPage>>,
    /// One read at a time: when the page must be read again, the fifty
    /// operators refreshing it wait for one read instead of all reading.
    refill: tokio::sync::Mutex<()>,
}

struct NearPage {
    ticket: u64,
    read_at: Instant,
    body: Bytes,
}

/// What the near cache has for a key.
enum Kept {
    /// Servable, and read less than [`NEAR_TTL`] ago.
    Fresh(Bytes),
    /// Servable, but due to be read again.
    Due(Bytes),
    Nothing,
}

impl Near {
    fn lookup(&self, key: &str) -> Kept {
        let floor = self.floor.load(Ordering::Acquire);
        let pages = self.pages.lock().expect("near pages");
        match pages.get(key) {
            Some(p) if p.ticket >= floor => {
                let age = p.read_at.elapsed();
                if age < NEAR_TTL {
                    Kept::Fresh(p.body.clone())
                } else if age < NEAR_MAX_AGE {
                    Kept::Due(p.body.clone())
                } else {
                    Kept::Nothing
                }
            }
            _ => Kept::Nothing,
        }
    }

    /// The ticket a read starting now will be tagged with.
    fn current(&self) -> u64 {
        self.tickets.load(Ordering::Acquire)
    }

    /// A committed change: its ticket.
    fn ticket(&self) -> u64 {
        self.tickets.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Pages tagged below `ticket` are no longer served.
    fn raise_floor(&self, ticket: u64) {
        self.floor.fetch_max(ticket, Ordering::AcqRel);
    }

    /// A change this process cannot read the page for (another process's, or
    /// one missed): nothing kept before it is served again.
    fn invalidate(&self) {
        let t = self.ticket();
        self.raise_floor(t);
    }

    fn forget(&self, key: &str) {
        self.pages.lock().expect("near pages").remove(key);
    }

    /// Keeps `body`, read when `ticket` tickets had been handed out, unless a
    /// page read later is kept already or the floor has passed it.
    fn keep(&self, key: String, ticket: u64, body: Bytes) {
        let floor = self.floor.load(Ordering::Acquire);
        if ticket < floor {
            return;
        }
        let mut pages = self.pages.lock().expect("near pages");
        if pages.get(&key).is_some_and(|p| p.ticket > ticket) {
            return;
        }
        // Pages below the floor or too old are never served again.
        pages.retain(|_, p| p.ticket >= floor && p.read_at.elapsed() < NEAR_MAX_AGE);
        if pages.len() < NEAR_MAX_PAGES || pages.contains_key(&key) {
            pages.insert(
                key,
                NearPage {
                    ticket,
                    read_at: Instant::now(),
                    body,
                },
            );
        }
    }
}

/// At most this many filters' first pages are kept in memory at once.
const NEAR_MAX_PAGES: usize = 256;

/// What the queue's readers and writers share: the database, the cache, the
/// SLA policy and this process's fan-out of changes to open consoles.
#[derive(Clone)]
pub struct Feed {
    pub db: Db,
    pub cache: Arc<dyn Cache>,
    pub sla: SlaPolicy,
    /// Counts the first page's cache hits and misses (`cache="queue"`).
    pub metrics: adapters::metrics::Metrics,
    live: broadcast::Sender<Arc<Change>>,
    near: Arc<Near>,
    /// This process among the MES processes sharing the cache: its own
    /// changes, heard back through publish/subscribe, are not news to it.
    origin: Arc<str>,
    /// Until then the shared cache's pages are not read (an invalidation of
    /// it failed, so a page of the old generation may still be there).
    distrust_until: Arc<Mutex<Option<Instant>>>,
}

impl Feed {
    pub fn new(
        db: Db,
        cache: Arc<dyn Cache>,
        sla: SlaPolicy,
        metrics: adapters::metrics::Metrics,
    ) -> Feed {
        Feed {
            db,
            cache,
            sla,
            metrics,
            live: broadcast::channel(4096).0,
            near: Arc::new(Near::default()),
            origin: uuid::Uuid::new_v4().to_string().into(),
            distrust_until: Default::default(),
        }
    }

    /// This process's stream of queue changes (for server-sent events).
    pub fn watch(&self) -> broadcast::Receiver<Arc<Change>> {
        self.live.subscribe()
    }

    /// Forwards the changes every MES process publishes to this process's
    /// consoles, for as long as it runs.
    pub async fn listen(self) {
        loop {
            match self.cache.subscribe(CHANNEL).await {
                Ok(mut messages) => {
                    // Changes made while not subscribed were not heard.
                    self.near.invalidate();
                    self.near.listening.store(true, Ordering::Release);
                    while let Some(m) = messages.next().await {
                        if m.as_slice() == adapters::cache::GAP {
                            // Changes may have been missed: nothing kept is trusted.
                            self.near.invalidate();
                            continue;
                        }
                        match serde_json::from_slice::<Change>(&m) {
                            Ok(mut c) => {
                                // This process's own changes were kept when made.
                                if c.origin.as_deref() != Some(&*self.origin) {
                                    self.near.invalidate();
                                }
                                c.origin = None;
                                let _ = self.live.send(Arc::new(c));
                            }
                            Err(e) => {
                                self.near.invalidate();
                                tracing::warn!(error = %e, "unreadable queue change ignored")
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot subscribe to queue changes"),
            }
            self.near.listening.store(false, Ordering::Release);
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    }

    /// After a committed change to the queue: invalidate the cached first pages
    /// (a confirmation also writes the new first page through), keep the new
    /// first page in this process, and tell every console. A cache that cannot
    /// be reached is logged, never an error: the database has the truth and
    /// the pages expire within [`PAGE_TTL`].
    pub async fn changed(&self, kind: &str, order_id: OrderId, operator: Option<&str>) {
        // Done to the end even if the caller goes away (a client that
        // disconnects mid-take): a change whose floor is never raised would
        // leave this process serving pages from before it.
        let feed = self.clone();
        let (kind, operator) = (kind.to_string(), operator.map(str::to_string));
        let done = tokio::spawn(async move { feed.announce(kind, order_id, operator).await });
        if let Err(e) = done.await {
            tracing::error!(order_id = %order_id, error = %e, "telling of a queue change failed");
            self.near.invalidate();
        }
    }

    async fn announce(&self, kind: String, order_id: OrderId, operator: Option<String>) {
        self.db.wrote(QUEUE_MARK).await;
        let generation = self.cache.incr(GEN_KEY).await;
        if let Err(e) = &generation {
            // It may still be applied later, or never: until the pages of the
            // old generation have expired, the shared cache is not read.
            self.distrust_shared_cache();
            tracing::warn!(order_id = %order_id, error = %e, "queue cache not invalidated (cache unreachable)");
        }
        // Taken after the commit and after the shared cache moved on: a page
        // read from now on shows this change.
        let ticket = self.near.ticket();
        let filter = Filter::default();
        match self.read_page(self.db.pool(), &filter, DEFAULT_LIMIT).await {
            Ok(bytes) => {
                self.near
                    .keep(filter.key(DEFAULT_LIMIT), ticket, bytes.clone());
                // Write-through: the default first page with the new order on top.
                if kind == "confirmed"
                    && let Ok(g) = generation
                    && let Err(e) = self
                        .cache
                        .set(&page_key(g, &filter, DEFAULT_LIMIT), &bytes, PAGE_TTL)
                        .await
                {
                    tracing::warn!(order_id = %order_id, error = %e, "first page not written through to the cache");
                }
            }
            Err(e) => {
                tracing::warn!(order_id = %order_id, error = %e, "first page not read after a change; read on the next refresh")
            }
        }
        // From now on nothing read before this change is served here.
        self.near.raise_floor(ticket);
        let change = Change {
            kind,
            order_id,
            operator,
            at: domain::rfc3339(domain::now()),
            origin: Some(self.origin.to_string()),
        };
        let bytes = serde_json::to_vec(&change).expect("serialisable");
        if let Err(e) = self.cache.publish(CHANNEL, &bytes).await {
            // Other processes will not hear it; this one's consoles still do.
            tracing::warn!(order_id = %order_id, error = %e, "queue change not published; telling local consoles only");
            let _ = self.live.send(Arc::new(Change {
                origin: None,
                ..change
            }));
        }
    }

    fn distrust_shared_cache(&self) {
        *self.distrust_until.lock().expect("distrust") = Some(Instant::now() + PAGE_TTL);
    }

    fn shared_cache_trusted(&self) -> bool {
        self.distrust_until
            .lock()
            .expect("distrust")
            .is_none_or(|t| Instant::now() >= t)
    }

    /// The first page for `filter`: from this process's memory (see [`Near`]),
    /// else from the shared cache, else from the database (the replica when it
    /// has caught up), then cached (cache-aside). The page as JSON, and where
    /// it came from.
    pub async fn first_page(
        &self,
        filter: &Filter,
        limit: i64,
    ) -> anyhow::Result<(Bytes, CacheOutcome)> {
        if !self.near.listening.load(Ordering::Acquire) {
            return self.shared_first_page(filter, limit).await;
        }
        let key = filter.key(limit);
        let (_refill, due) = match self.near.lookup(&key) {
            Kept::Fresh(body) => {
                self.metrics.cache_hit("queue");
                return Ok((body, CacheOutcome::Hit));
            }
            // Due to be read again: one request reads it, the others are
            // served what is kept meanwhile.
            Kept::Due(body) => match self.near.refill.try_lock() {
                Ok(guard) => (guard, Some(body)),
                Err(_) => {
                    self.metrics.cache_hit("queue");
                    return Ok((body, CacheOutcome::Hit));
                }
            },
            Kept::Nothing => {
                let guard = self.near.refill.lock().await;
                // Somebody else may have read it while this request waited.
                if let Kept::Fresh(body) | Kept::Due(body) = self.near.lookup(&key) {
                    self.metrics.cache_hit("queue");
                    return Ok((body, CacheOutcome::Hit));
                }
                (guard, None)
            }
        };
        let ticket = self.near.current();
        match self.shared_first_page(filter, limit).await {
            // A page read around the shared cache (unreachable or distrusted)
            // is not kept, and neither is the one before it: changes of other
            // processes may go unheard meanwhile.
            Ok((body, CacheOutcome::Bypass)) => {
                self.near.forget(&key);
                Ok((body, CacheOutcome::Bypass))
            }
            Ok((body, outcome)) => {
                self.near.keep(key, ticket, body.clone());
                Ok((body, outcome))
            }
            // The database cannot be read: this request gets the page kept
            // (at most NEAR_MAX_AGE old), the next ones will try again.
            Err(e) => match due {
                Some(body) => {
                    tracing::warn!(error = %e, "first page not read again; serving the one kept");
                    self.near.forget(&key);
                    self.metrics.cache_hit("queue");
                    Ok((body, CacheOutcome::Hit))
                }
                None => Err(e),
            },
        }
    }

    /// The first page for `filter` from `pool`, as JSON.
    async fn read_page(
        &self,
        pool: &AnyPool,
        filter: &Filter,
        limit: i64,
    ) -> anyhow::Result<Bytes> {
        let page = list(self, pool, filter, None, limit).await?;
        Ok(serde_json::to_vec(&page)?.into())
    }

    /// The first page from the database (the replica once it has this
    /// process's last change), around the shared cache.
    async fn bypass(&self, filter: &Filter, limit: i64) -> anyhow::Result<(Bytes, CacheOutcome)> {
        let pool = self.db.reader(QUEUE_MARK).await;
        Ok((
            self.read_page(pool, filter, limit).await?,
            CacheOutcome::Bypass,
        ))
    }

    /// The first page from the shared cache, else from the database.
    async fn shared_first_page(
        &self,
        filter: &Filter,
        limit: i64,
    ) -> anyhow::Result<(Bytes, CacheOutcome)> {
        if !self.shared_cache_trusted() {
            return self.bypass(filter, limit).await;
        }
        let generation = match self.cache.get(GEN_KEY).await {
            Ok(g) => g
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| s.parse::<i64>().ok())
                .unwrap_or(0),
            Err(e) => {
                tracing::warn!(error = %e, "queue cache unreachable; reading the database");
                return self.bypass(filter, limit).await;
            }
        };
        let key = page_key(generation, filter, limit);
        match self.cache.get(&key).await {
            Ok(Some(bytes)) => {
                self.metrics.cache_hit("queue");
                return Ok((bytes.into(), CacheOutcome::Hit));
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "queue cache read failed; reading the database"),
        }
        let pool = self.db.reader(QUEUE_MARK).await;
        let bytes = self.read_page(pool, filter, limit).await?;
        if let Err(e) = self.cache.set(&key, &bytes, PAGE_TTL).await {
            tracing::warn!(error = %e, "first page not cached");
        }
        self.metrics.cache_miss("queue");
        Ok((bytes, CacheOutcome::Miss))
    }
}

/// Confirmed orders not yet taken, newest confirmation first (keyset pagination:
/// the cursor is the last row's (confirmed_at_ms, id); never OFFSET).
pub async fn list(
    feed: &Feed,
    pool: &AnyPool,
    filter: &Filter,
    cursor: Option<(i64, String)>,
    limit: i64,
) -> anyhow::Result<QueuePage> {
    // `status = 'CONFIRMED'` is written out (not bound) so that the planner can
    // use the partial indexes on confirmed orders. The page's ids are found
    // first, reading only columns the partial indexes hold (an index-only
    // scan: the weight and price filters are checked on index entries, not on
    // table rows), and only the page's rows are then read whole.
    let mut sql = "SELECT id FROM orders WHERE status = 'CONFIRMED'".to_string();
    let mut n = 0;
    let mut p = || {
        n += 1;
        format!("${n}")
    };
    if filter.material.is_some() {
        sql += &format!(" AND material_code = {}", p());
    }
    if filter.min_weight_g.is_some() {
        sql += &format!(" AND weight_g >= {}", p());
    }
    if filter.min_price_minor.is_some() {
        sql += &format!(" AND price_minor >= {}", p());
    }
    if cursor.is_some() {
        let (a, b) = (p(), p());
        sql += &format!(" AND (confirmed_at_ms, id) < ({a}, {b})");
    }
    sql += &format!(" ORDER BY confirmed_at_ms DESC, id DESC LIMIT {}", p());
    let sql = format!(
        "SELECT {COLUMNS} FROM orders WHERE id IN ({sql}) ORDER BY confirmed_at_ms DESC, id DESC"
    );
    let mut q = sqlx::query(&sql);
    if let Some(m) = &filter.material {
        q = q.bind(m.to_ascii_uppercase());
    }
    if let Some(w) = filter.min_weight_g {
        q = q.bind(w);
    }
    if let Some(pr) = filter.min_price_minor {
        q = q.bind(pr);
    }
    if let Some((ms, id)) = cursor {
        q = q.bind(ms).bind(id);
    }
    let rows = q.bind(limit + 1).fetch_all(pool).await?;
    let mut orders = rows
        .iter()
        .map(orders::from_row)
        .collect::<anyhow::Result<Vec<_>>>()?;
    let next_cursor = if orders.len() as i64 > limit {
        orders.truncate(limit as usize);
        orders
            .last()
            .map(|o| web::paging::encode(o.confirmed_at_ms.unwrap_or(0), &o.order_id))
    } else {
        None
    };
    for o in &mut orders {
        o.deadline = o
            .confirmed_at_ms
            .and_then(|ms| feed.sla.deadline_ms(OrderStatus::Confirmed, ms))
            .map(|ms| domain::rfc3339(domain::from_ms(ms)));
        o.preview_url = Some(format!("/api/v1/models/{}/preview.png", o.order_id));
    }
    Ok(QueuePage {
        orders,
        next_cursor,
    })
}

/// The naive baseline for `scripts/bench-queue` only (mounted when
/// `mes.bench_naive_queue` is set): what the old system did — OFFSET paging,
/// expressions that keep the planner off every index, no cache.
pub async fn list_naive(
    feed: &Feed,
    filter: &Filter,
    offset: i64,
    limit: i64,
) -> anyhow::Result<QueuePage> {
    let mut sql = format!("SELECT {COLUMNS} FROM orders WHERE status || '' = 'CONFIRMED'");
    let mut n = 0;
    let mut p = || {
        n += 1;
        format!("${n}")
    };
    if filter.material.is_some() {
        sql += &format!(" AND material_code || '' = {}", p());
    }
    let (l, o) = (p(), p());
    sql += &format!(" ORDER BY confirmed_at_ms + 0 DESC, id DESC LIMIT {l} OFFSET {o}");
    let mut q = sqlx::query(&sql);
    if let Some(m) = &filter.material {
        q = q.bind(m.to_ascii_uppercase());
    }
    let rows = q.bind(limit).bind(offset).fetch_all(feed.db.pool()).await?;
    let orders = rows
        .iter()
        .map(orders::from_row)
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(QueuePage {
        orders,
        next_cursor: None,
    })
}

/// Orders an operator has in work, most recently taken first.
pub async fn in_work(state: &MesState, operator: &Caller) -> anyhow::Result<Vec<MesOrder>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM orders WHERE operator_id = $1 AND status IN ('MANUFACTURING_STARTED', 'MANUFACTURED', 'PACKED') \
         ORDER BY taken_at_ms DESC LIMIT 200"
    ))
    .bind(operator.user_id.to_string())
    .fetch_all(state.db.pool())
    .await?;
    rows.iter().map(orders::from_row).collect()
}

/// Every order in work, most recently taken first (managers reassign from it).
pub async fn all_in_work(state: &MesState) -> anyhow::Result<Vec<MesOrder>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM orders WHERE status IN ('MANUFACTURING_STARTED', 'MANUFACTURED', 'PACKED') \
         ORDER BY taken_at_ms DESC LIMIT 100"
    ))
    .fetch_all(state.db.any_reader())
    .await?;
    rows.iter().map(orders::from_row).collect()
}

fn actor(op: &Caller) -> Actor {
    Actor {
        kind: "operator".into(),
        name: op.name.clone(),
        user_id: Some(op.user_id),
    }
}

/// Takes an order into work. Among any number of operators at once, exactly one wins:
/// the update only matches while the order is still CONFIRMED.
#[tracing::instrument(skip(state, op), fields(order_id = %id, operator = %op.name))]
pub async fn take(state: &MesState, op: &Caller, id: OrderId) -> Result<(), QueueError> {
    if op.role != Role::Operator {
        return Err(QueueError::NotOperator);
    }
    let now = domain::to_ms(domain::now());
    let mut tx = state.db.begin_write().await?;
    let won = sqlx::query(
        "UPDATE orders SET status = 'MANUFACTURING_STARTED', operator_id = $1, operator_name = $2, taken_at_ms = $3, \
         updated_at_ms = $3 WHERE id = $4 AND status = 'CONFIRMED'",
    )
    .bind(op.user_id.to_string())
    .bind(&op.name)
    .bind(now)
    .bind(id.to_string())
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !won {
        drop(tx);
        let row =
            sqlx::query("SELECT status, operator_name, taken_at_ms FROM orders WHERE id = $1")
                .bind(id.to_string())
                .fetch_optional(state.db.pool())
                .await?
                .ok_or(QueueError::NotFound)?;
        let status = OrderStatus::parse(&row.try_get::<String, _>("status")?)
            .unwrap_or(OrderStatus::Pricing);
        let name: Option<String> = row.try_get("operator_name")?;
        return Err(match name {
            Some(name) => QueueError::AlreadyTaken {
                name,
                at: row
                    .try_get::<Option<i64>, _>("taken_at_ms")?
                    .map(|ms| domain::rfc3339(domain::from_ms(ms))),
            },
            None => match status.transition(OrderStatus::ManufacturingStarted) {
                Err(e) => QueueError::Transition(e),
                // Confirmed again by now (a release in between): the operator may simply retry.
                Ok(_) => QueueError::Internal(anyhow::anyhow!(
                    "the order changed while it was being taken; try again"
                )),
            },
        });
    }
    let to = OrderStatus::ManufacturingStarted;
    orders::record(&mut tx, id, to, &actor(op), None).await?;
    let ev = OrderStatusChanged {
        order_id: id,
        status: to,
        actor: actor(op),
        tracking_number: None,
        note: None,
    };
    outbox::enqueue(&mut tx, &Envelope::new("mes", &ev)).await?;
    tx.commit().await?;
    state.relay.kick();
    state.db.wrote(&op.user_id.to_string()).await;
    state
        .feed
        .changed("taken", id, Some(op.name.as_str()))
        .await;
    tracing::info!(order_id = %id, operator = %op.name, "order taken into work");
    Ok(())
}

fn reason(text: &str) -> Result<String, QueueError> {
    web::text::multi_line(text, web::text::MAX_REASON, false)
        .map_err(|_| QueueError::ReasonRequired)
}

/// A carrier's tracking number as typed: trimmed, bounded, plain characters only
/// (it reaches e-mails, webhooks, CSV exports and the customer's page).
fn tracking_number(text: &str) -> Result<Option<String>, QueueError> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    if t.chars().count() > web::text::MAX_TRACKING
        || !t
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '/' | '.'))
    {
        return Err(QueueError::BadTracking);
    }
    Ok(Some(t.to_string()))
}

/// Gives an order in work back to the queue (MANUFACTURING_STARTED → CONFIRMED):
/// only its operator can, with a reason; the order keeps its confirmation time
/// (and so its place and deadline in the queue).
#[tracing::instrument(skip(state, op, why), fields(order_id = %id, operator = %op.name))]
pub async fn release(
    state: &MesState,
    op: &Caller,
    id: OrderId,
    why: &str,
) -> Result<(), QueueError> {
    if op.role != Role::Operator {
        return Err(QueueError::ReleaseNotOperator);
    }
    let why = reason(why)?;
    let mut tx = state.db.begin_write().await?;
    let released = sqlx::query(
        "UPDATE orders SET status = 'CONFIRMED', operator_id = NULL, operator_name = NULL, taken_at_ms = NULL, \
         updated_at_ms = $1 WHERE id = $2 AND status = 'MANUFACTURING_STARTED' AND operator_id = $3",
    )
    .bind(domain::to_ms(domain::now()))
    .bind(id.to_string())
    .bind(op.user_id.to_string())
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !released {
        let row =
            sqlx::query("SELECT status, operator_id, operator_name FROM orders WHERE id = $1")
                .bind(id.to_string())
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(QueueError::NotFound)?;
        let status = OrderStatus::parse(&row.try_get::<String, _>("status")?)
            .unwrap_or(OrderStatus::Pricing);
        status.transition(OrderStatus::Confirmed)?;
        let name: Option<String> = row.try_get("operator_name")?;
        return Err(QueueError::NotYours(name.unwrap_or_default()));
    }
    let to = OrderStatus::Confirmed;
    orders::record(&mut tx, id, to, &actor(op), Some(&why)).await?;
    let ev = OrderStatusChanged {
        order_id: id,
        status: to,
        actor: actor(op),
        tracking_number: None,
        note: Some(why.clone()),
    };
    outbox::enqueue(&mut tx, &Envelope::new("mes", &ev)).await?;
    tx.commit().await?;
    state.relay.kick();
    state.db.wrote(&op.user_id.to_string()).await;
    state.feed.changed("released", id, None).await;
    tracing::info!(order_id = %id, operator = %op.name, reason = %why, "order released to the queue");
    Ok(())
}

/// Operators MES has seen at work: (id, name), by name.
pub async fn known_operators(state: &MesState) -> anyhow::Result<Vec<(String, String)>> {
    let rows = sqlx::query(
        "SELECT actor_id, MAX(actor_name) AS name FROM status_history \
         WHERE actor_kind = 'operator' AND actor_id IS NOT NULL GROUP BY actor_id ORDER BY MAX(actor_name)",
    )
    .fetch_all(state.db.pool())
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("actor_id")?, r.try_get("name")?)))
        .collect()
}

/// A manager hands an order in work to another operator, with a reason. The
/// status does not change (the customer sees no difference); MES's history
/// records who moved it, from whom, to whom and why.
#[tracing::instrument(skip(state, manager, why), fields(order_id = %id, to = %to_id))]
pub async fn reassign(
    state: &MesState,
    manager: &Caller,
    id: OrderId,
    to_id: uuid::Uuid,
    to_name: Option<&str>,
    why: &str,
) -> Result<String, QueueError> {
    if manager.role != Role::Manager {
        return Err(QueueError::NotManager);
    }
    let why = reason(why)?;
    let to_name = match to_name.map(str::trim).filter(|n| !n.is_empty()) {
        // A name with line breaks or of a page's length names nobody.
        Some(n) => web::text::one_line(n, web::text::MAX_NAME, false).map_err(|_| {
            QueueError::UnknownOperator(n.chars().take(web::text::MAX_NAME).collect())
        })?,
        None => known_operators(state)
            .await?
            .into_iter()
            .find(|(oid, _)| *oid == to_id.to_string())
            .map(|(_, n)| n)
            .ok_or_else(|| QueueError::UnknownOperator(to_id.to_string()))?,
    };
    let mut tx = state.db.begin_write().await?;
    let row = sqlx::query("SELECT status, operator_id, operator_name FROM orders WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(QueueError::NotFound)?;
    let status =
        OrderStatus::parse(&row.try_get::<String, _>("status")?).unwrap_or(OrderStatus::Pricing);
    if !matches!(
        status,
        OrderStatus::ManufacturingStarted | OrderStatus::Manufactured | OrderStatus::Packed
    ) {
        return Err(QueueError::NotInWork(status));
    }
    let from_id: Option<String> = row.try_get("operator_id")?;
    let from_name: String = row
        .try_get::<Option<String>, _>("operator_name")?
        .unwrap_or_default();
    if from_id.as_deref() == Some(to_id.to_string().as_str()) {
        return Err(QueueError::AlreadyAssigned(from_name));
    }
    // Guarded by the operator we read: a concurrent reassignment makes this one retry.
    let moved = sqlx::query(
        "UPDATE orders SET operator_id = $1, operator_name = $2, updated_at_ms = $3 \
         WHERE id = $4 AND status = $5 AND operator_id = $6",
    )
    .bind(to_id.to_string())
    .bind(&to_name)
    .bind(domain::to_ms(domain::now()))
    .bind(id.to_string())
    .bind(status.as_str())
    .bind(from_id.clone().unwrap_or_default())
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !moved {
        return Err(QueueError::Internal(anyhow::anyhow!(
            "the order changed while it was being reassigned; try again"
        )));
    }
    let who = Actor {
        kind: "manager".into(),
        name: manager.name.clone(),
        user_id: Some(manager.user_id),
    };
    let note = format!("reassigned from {from_name} to {to_name}: {why}");
    orders::record(&mut tx, id, status, &who, Some(&note)).await?;
    tx.commit().await?;
    state.db.wrote(&manager.user_id.to_string()).await;
    state
        .feed
        .changed("reassigned", id, Some(to_name.as_str()))
        .await;
    tracing::info!(order_id = %id, from = %from_name, to = %to_name, "order reassigned");
    Ok(to_name)
}

/// Moves an order in work to MANUFACTURED, PACKED or SHIPPED (with a tracking number).
#[tracing::instrument(skip(state, op, tracking), fields(order_id = %id, to = %to))]
pub async fn advance(
    state: &MesState,
    op: &Caller,
    id: OrderId,
    to: OrderStatus,
    tracking: Option<String>,
) -> Result<(), QueueError> {
    if op.role != Role::Operator {
        return Err(QueueError::NotOperator);
    }
    if !matches!(
        to,
        OrderStatus::Manufactured | OrderStatus::Packed | OrderStatus::Shipped
    ) {
        return Err(QueueError::NotProductionStatus(to));
    }
    let tracking = match tracking {
        Some(t) => tracking_number(&t)?,
        None => None,
    };
    if to == OrderStatus::Shipped && tracking.is_none() {
        return Err(QueueError::TrackingRequired);
    }
    let mut tx = state.db.begin_write().await?;
    let row = sqlx::query("SELECT status, operator_id, operator_name FROM orders WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(QueueError::NotFound)?;
    let from =
        OrderStatus::parse(&row.try_get::<String, _>("status")?).unwrap_or(OrderStatus::Pricing);
    from.transition(to)?;
    let owner: Option<String> = row.try_get("operator_id")?;
    if owner.as_deref() != Some(op.user_id.to_string().as_str()) {
        let name: Option<String> = row.try_get("operator_name")?;
        return Err(QueueError::NotYours(name.unwrap_or_default()));
    }
    sqlx::query(
        "UPDATE orders SET status = $1, tracking_number = COALESCE($2, tracking_number), updated_at_ms = $3 \
         WHERE id = $4 AND status = $5",
    )
    .bind(to.as_str())
    .bind(&tracking)
    .bind(domain::to_ms(domain::now()))
    .bind(id.to_string())
    .bind(from.as_str())
    .execute(&mut *tx)
    .await?;
    orders::record(&mut tx, id, to, &actor(op), tracking.as_deref()).await?;
    let ev = OrderStatusChanged {
        order_id: id,
        status: to,
        actor: actor(op),
        tracking_number: tracking,
        note: None,
    };
    outbox::enqueue(&mut tx, &Envelope::new("mes", &ev)).await?;
    tx.commit().await?;
    state.relay.kick();
    tracing::info!(order_id = %id, status = %to, "production status changed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served(near: &Near, key: &str) -> Option<Bytes> {
        match near.lookup(key) {
            Kept::Fresh(b) | Kept::Due(b) => Some(b),
            Kept::Nothing => None,
        }
    }

    #[test]
    fn a_change_of_this_process_replaces_the_page_without_a_gap() {
        let near = Near::default();
        near.keep("k".into(), near.current(), Bytes::from_static(b"before"));
        // A change committed: while its page is being read, the page from
        // before is still served (nobody waits)...
        let t = near.ticket();
        assert_eq!(served(&near, "k").as_deref(), Some(&b"before"[..]));
        // ...a read that started before the change cannot replace a later one...
        near.keep("k".into(), t, Bytes::from_static(b"after"));
        near.keep("k".into(), t - 1, Bytes::from_static(b"late read"));
        near.raise_floor(t);
        assert_eq!(served(&near, "k").as_deref(), Some(&b"after"[..]));
        // ...and once the change is done, a page read before it is never kept.
        near.keep("other".into(), t - 1, Bytes::from_static(b"old"));
        assert_eq!(served(&near, "other"), None);
    }

    #[test]
    fn other_filters_are_read_again_after_a_change() {
        let near = Near::default();
        near.keep(
            "m=AU585Y".into(),
            near.current(),
            Bytes::from_static(b"gold"),
        );
        let t = near.ticket();
        near.keep("default".into(), t, Bytes::from_static(b"new"));
        near.raise_floor(t);
        assert_eq!(served(&near, "m=AU585Y"), None, "read before the change");
        assert_eq!(served(&near, "default").as_deref(), Some(&b"new"[..]));
    }

    #[test]
    fn a_change_heard_from_elsewhere_retires_every_page_at_once() {
        let near = Near::default();
        near.keep("k".into(), near.current(), Bytes::from_static(b"page"));
        near.invalidate();
        assert_eq!(served(&near, "k"), None);
        // A read that started before it heard the change is not kept either.
        near.keep("k".into(), near.current() - 1, Bytes::from_static(b"page"));
        assert_eq!(served(&near, "k"), None);
        near.keep("k".into(), near.current(), Bytes::from_static(b"fresh"));
        assert_eq!(served(&near, "k").as_deref(), Some(&b"fresh"[..]));
    }

    /// The in-process cache, whose INCR can be made to fail (as a Redis
    /// command that times out does).
    struct FlakyCache {
        inner: adapters::cache::MemoryCache,
        fail_incr: AtomicBool,
    }

    #[async_trait::async_trait]
    impl Cache for FlakyCache {
        async fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
            self.inner.get(key).await
        }
        async fn set(&self, key: &str, v: &[u8], ttl: std::time::Duration) -> anyhow::Result<()> {
            self.inner.set(key, v, ttl).await
        }
        async fn delete(&self, key: &str) -> anyhow::Result<()> {
            self.inner.delete(key).await
        }
        async fn incr(&self, key: &str) -> anyhow::Result<i64> {
            anyhow::ensure!(
                !self.fail_incr.load(Ordering::SeqCst),
                "timed out after 250 ms"
            );
            self.inner.incr(key).await
        }
        async fn publish(&self, channel: &str, m: &[u8]) -> anyhow::Result<()> {
            self.inner.publish(channel, m).await
        }
        async fn subscribe(&self, channel: &str) -> anyhow::Result<adapters::cache::Messages> {
            self.inner.subscribe(channel).await
        }
        async fn ping(&self) -> anyhow::Result<()> {
            self.inner.ping().await
        }
        fn backend(&self) -> &'static str {
            "memory"
        }
    }

    #[tokio::test]
    async fn after_a_failed_invalidation_the_shared_pages_are_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let url = adapters::db::sqlite_url(&dir.path().join("mes.db"));
        let db = Db::connect(&url, crate::migrations::MIGRATIONS)
            .await
            .unwrap();
        let cache = Arc::new(FlakyCache {
            inner: adapters::cache::MemoryCache::new("t:"),
            fail_incr: AtomicBool::new(false),
        });
        let feed = Feed::new(
            db,
            cache.clone(),
            SlaPolicy::default(),
            adapters::metrics::Metrics::new(),
        );
        let filter = Filter::default();
        // A page of the current generation that a change is about to make stale.
        let stale = br#"{"orders":[],"next_cursor":"from before the take"}"#;
        cache
            .set(&page_key(0, &filter, 20), stale, PAGE_TTL)
            .await
            .unwrap();
        let (body, outcome) = feed.first_page(&filter, 20).await.unwrap();
        assert_eq!((&body[..], outcome), (&stale[..], CacheOutcome::Hit));

        cache.fail_incr.store(true, Ordering::SeqCst);
        feed.changed("taken", OrderId::new(), Some("Olga")).await;
        let (body, outcome) = feed.first_page(&filter, 20).await.unwrap();
        assert_eq!(outcome, CacheOutcome::Bypass, "read from the database");
        assert_ne!(&body[..], &stale[..]);
    }

    #[test]
    fn an_old_page_is_due_then_no_longer_served() {
        let near = Near::default();
        let at = |age: std::time::Duration| NearPage {
            ticket: 0,
            read_at: Instant::now().checked_sub(age).expect("the clock runs"),
            body: Bytes::from_static(b"page"),
        };
        let lookup = |age| {
            near.pages.lock().unwrap().insert("k".into(), at(age));
            near.lookup("k")
        };
        assert!(matches!(lookup(std::time::Duration::ZERO), Kept::Fresh(_)));
        assert!(matches!(lookup(NEAR_TTL), Kept::Due(_)));
        assert!(matches!(lookup(NEAR_MAX_AGE), Kept::Nothing));
    }
}
