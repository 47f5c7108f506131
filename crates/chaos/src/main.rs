//! `chaos`: starts gateway, crm, mes and two pricing workers as separate
//! processes on the production profile (PostgreSQL, RabbitMQ), drives orders
//! through their whole life — uploads with Idempotency-Key, retried on errors,
//! some sent twice on purpose; confirmations; operators taking and finishing
//! orders — while injecting faults at moments drawn from a printed seed:
//! kill -9 of pricing workers, mes, crm and the notifier; RabbitMQ and
//! PostgreSQL restarts;
//! poison messages. Then it drains and checks, in Jepsen's words, that nothing
//! was lost, duplicated, stuck or unexpected; that the dead letters hold only
//! the poison; that the outboxes are empty; that CRM and MES agree.

use anyhow::{Context, bail};
use clap::Parser;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use reqwest::{Client, StatusCode};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(
    about = "Fault injection against a multi-process deployment; exits non-zero if an invariant fails"
)]
struct Args {
    /// Orders to drive through their whole life.
    #[arg(long, default_value_t = 200)]
    orders: usize,
    /// Seed for the fault schedule and the workload (printed; random if absent).
    #[arg(long)]
    seed: Option<u64>,
    /// Orders in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Faults of each kind at least.
    #[arg(long, default_value_t = 2)]
    faults_per_kind: usize,
    /// The alexandrite binary.
    #[arg(long, env = "ALEXANDRITE_BIN")]
    bin: PathBuf,
    /// The shared models folder (test input).
    #[arg(long, default_value = "../shared/models")]
    models: PathBuf,
    /// PostgreSQL server (databases are made fresh for the run).
    #[arg(
        long,
        env = "CHAOS_POSTGRES_URL",
        default_value = "postgres://postgres:postgres@127.0.0.1:5432"
    )]
    postgres: String,
    /// PostgreSQL cluster to restart (`pg_ctlcluster VERSION main restart -m immediate`).
    #[arg(long, env = "CHAOS_PG_VERSION", default_value = "15")]
    pg_version: String,
    /// RabbitMQ (a fresh vhost is made for the run).
    #[arg(
        long,
        env = "CHAOS_AMQP",
        default_value = "amqp://guest:guest@127.0.0.1:5672"
    )]
    amqp: String,
    /// Port of the run's own Redis (the cache), started and restarted by the run.
    #[arg(long, default_value_t = 6390)]
    redis_port: u16,
    /// Seconds to wait for every order to finish after the workload.
    #[arg(long, default_value_t = 240)]
    drain_seconds: u64,
}

const ROLES: &[(&str, &str)] = &[
    ("crm", "crm"),
    ("mes", "mes"),
    ("pricing-1", "pricing"),
    ("pricing-2", "pricing"),
    ("notifier", "notifier"),
    ("gateway", "gateway"),
];

/// The run's own Redis server (no persistence: a restart empties the cache,
/// which the platform must survive).
struct Redis {
    port: u16,
    dir: PathBuf,
}

impl Redis {
    fn pidfile(&self) -> PathBuf {
        self.dir.join("redis.pid")
    }

    fn start(&self) -> anyhow::Result<()> {
        sh(&format!(
            "redis-server --port {port} --bind 127.0.0.1 --save '' --appendonly no \
             --daemonize yes --pidfile {pid} --logfile {log} --dir {dir}",
            port = self.port,
            pid = self.pidfile().display(),
            log = self.dir.join("redis.log").display(),
            dir = self.dir.display(),
        ))?;
        for _ in 0..100 {
            if sh(&format!(
                "redis-cli -p {} ping 2>/dev/null | grep -q PONG",
                self.port
            ))
            .is_ok()
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("redis-server did not answer on 127.0.0.1:{}", self.port)
    }

    /// Kills it (SIGKILL: nothing is flushed) and waits until it is gone.
    fn kill(&self) {
        if let Ok(pid) = std::fs::read_to_string(self.pidfile()) {
            let pid = pid.trim();
            let _ = sh(&format!(
                "kill -9 {pid} 2>/dev/null; while kill -0 {pid} 2>/dev/null; do sleep 0.05; done"
            ));
            let _ = std::fs::remove_file(self.pidfile());
        }
    }
}

/// The deployment: one child process per role, restartable.
struct Deployment {
    bin: PathBuf,
    dir: PathBuf,
    env: Vec<(String, String)>,
    ports: HashMap<&'static str, u16>,
    children: Mutex<HashMap<&'static str, Child>>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Deployment {
    fn start(&self, name: &'static str) -> anyhow::Result<()> {
        let role = ROLES.iter().find(|(n, _)| *n == name).unwrap().1;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{name}.log")))?;
        let child = Command::new(&self.bin)
            .args([
                "serve",
                "--role",
                role,
                "--listen",
                &format!("127.0.0.1:{}", self.ports[name]),
            ])
            .envs(self.env.iter().cloned())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        self.children.lock().unwrap().insert(name, child);
        Ok(())
    }

    /// Restarts every role whose process has exited by itself, as a service
    /// manager (systemd's `Restart=always`) would: a role exits when, say, its
    /// database is still recovering when it starts. Returns the names restarted.
    fn keep(&self) -> Vec<&'static str> {
        // Taken out of the map under one lock, so a fault's kill-and-restart
        // in between cannot lose track of a process it started.
        let exited: Vec<&'static str> = {
            let mut children = self.children.lock().unwrap();
            let names: Vec<&'static str> = children
                .iter_mut()
                .filter_map(|(name, c)| matches!(c.try_wait(), Ok(Some(_))).then_some(*name))
                .collect();
            for name in &names {
                children.remove(name);
            }
            names
        };
        for name in &exited {
            if let Err(e) = self.start(name) {
                eprintln!("chaos: restarting {name} failed: {e:#}");
            }
        }
        exited
    }

    /// SIGKILL: nothing graceful happens.
    fn kill9(&self, name: &'static str) {
        if let Some(mut c) = self.children.lock().unwrap().remove(name) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    async fn ready(&self, name: &str, within: Duration) -> anyhow::Result<()> {
        let url = format!("http://127.0.0.1:{}/health/ready", self.ports[name]);
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(r) = reqwest::get(&url).await {
                if r.status() == StatusCode::OK {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        bail!(
            "{name} not ready within {within:?}; see {}",
            self.dir.join(format!("{name}.log")).display()
        )
    }

    fn cli(&self, args: &[&str]) -> anyhow::Result<std::process::Output> {
        Ok(Command::new(&self.bin)
            .args(args)
            .envs(self.env.iter().cloned())
            .output()?)
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        for (_, mut c) in self.children.lock().unwrap().drain() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    KillPricing,
    KillMes,
    KillCrm,
    KillNotifier,
    RestartRabbit,
    RestartPostgres,
    RestartRedis,
    Poison,
}

/// What the run saw.
#[derive(Default)]
struct Tally {
    /// Idempotency key → every order id the API answered for it.
    accepted: BTreeMap<String, HashSet<String>>,
    unexpected: Vec<String>,
    retries: usize,
}

fn sh(cmd: &str) -> anyhow::Result<()> {
    let st = Command::new("sh").arg("-c").arg(cmd).status()?;
    anyhow::ensure!(st.success(), "`{cmd}` failed: {st}");
    Ok(())
}

async fn send(
    client: &Client,
    req: reqwest::RequestBuilder,
) -> Result<(StatusCode, Value), String> {
    let _ = client;
    match req.send().await {
        Ok(r) => {
            let s = r.status();
            Ok((s, r.json().await.unwrap_or(Value::Null)))
        }
        Err(e) => Err(e.to_string()),
    }
}

const ORDER: [&str; 7] = [
    "PRICING",
    "AWAITING_CONFIRMATION",
    "CONFIRMED",
    "MANUFACTURING_STARTED",
    "MANUFACTURED",
    "PACKED",
    "SHIPPED",
];

fn rank(s: &str) -> usize {
    ORDER.iter().position(|x| *x == s).unwrap_or(0)
}

struct Ctx {
    base: String,
    key: String,
    op: String,
    client: Client,
    tally: Mutex<Tally>,
    deadline: Instant,
}

impl Ctx {
    fn unexpected(&self, what: String) {
        eprintln!("unexpected: {what}");
        self.tally.lock().unwrap().unexpected.push(what);
    }
    fn retried(&self) {
        self.tally.lock().unwrap().retries += 1;
    }
    async fn pause(&self) {
        tokio::time::sleep(Duration::from_millis(150)).await;
    }

    async fn upload(&self, idem: &str, name: &str, bytes: &[u8]) -> Option<String> {
        while Instant::now() < self.deadline {
            let form = reqwest::multipart::Form::new()
                .part(
                    "file",
                    reqwest::multipart::Part::bytes(bytes.to_vec()).file_name(name.to_string()),
                )
                .text("material", "AU585Y");
            let req = self
                .client
                .post(format!("{}/api/v1/models", self.base))
                .bearer_auth(&self.key)
                .header("Idempotency-Key", idem)
                .multipart(form);
            match send(&self.client, req).await {
                Ok((StatusCode::ACCEPTED, v)) => {
                    let id = v["order_id"].as_str().unwrap_or_default().to_string();
                    self.tally
                        .lock()
                        .unwrap()
                        .accepted
                        .entry(idem.into())
                        .or_default()
                        .insert(id.clone());
                    return Some(id);
                }
                Ok((s, v)) if s.is_client_error() && s != StatusCode::TOO_MANY_REQUESTS => {
                    self.unexpected(format!("upload {idem}: {s} {v}"));
                    return None;
                }
                _ => {
                    self.retried();
                    self.pause().await;
                }
            }
        }
        None
    }

    /// The order's status as the B2B API shows it (None while unreachable).
    async fn status(&self, id: &str) -> Option<(String, Value)> {
        let req = self
            .client
            .get(format!("{}/api/v1/orders/{id}", self.base))
            .bearer_auth(&self.key);
        match send(&self.client, req).await {
            Ok((StatusCode::OK, v)) => {
                Some((v["status"].as_str().unwrap_or_default().to_string(), v))
            }
            _ => None,
        }
    }

    async fn wait_for(&self, id: &str, at_least: &str) -> bool {
        while Instant::now() < self.deadline {
            if let Some((s, _)) = self.status(id).await {
                if rank(&s) >= rank(at_least) && s != "REJECTED" && s != "CANCELLED" {
                    return true;
                }
                if s == "REJECTED" || s == "CANCELLED" {
                    self.unexpected(format!("order {id} is {s}"));
                    return false;
                }
            }
            self.pause().await;
        }
        false
    }

    /// POSTs until the order is at least at `target` (a retry after a success
    /// answers 409 with the order already further along: that is success).
    async fn advance(&self, path: &str, body: Option<Value>, key: &str, target: &str) -> bool {
        while Instant::now() < self.deadline {
            let mut req = self
                .client
                .post(format!("{}{path}", self.base))
                .bearer_auth(key);
            if let Some(b) = &body {
                req = req.json(b);
            }
            match send(&self.client, req).await {
                Ok((StatusCode::OK, _)) => return true,
                Ok((StatusCode::CONFLICT, v)) => {
                    let current = v["error"]["details"]["current_status"]
                        .as_str()
                        .unwrap_or("");
                    let code = v["error"]["code"].as_str().unwrap_or("");
                    if code == "already_taken"
                        && v["error"]["details"]["taken_by"] == "Chaos Operator"
                    {
                        return true;
                    }
                    if !current.is_empty() && rank(current) >= rank(target) {
                        return true;
                    }
                    // Not there yet (the confirmation is still travelling): again.
                    self.retried();
                }
                Ok((s, v)) if s.is_client_error() && s != StatusCode::NOT_FOUND => {
                    self.unexpected(format!("{path}: {s} {v}"));
                    return false;
                }
                _ => self.retried(),
            }
            self.pause().await;
        }
        false
    }

    async fn life(&self, i: usize, idem: String, name: &str, bytes: &[u8], twice: bool) {
        let Some(id) = self.upload(&idem, name, bytes).await else {
            return;
        };
        if twice {
            // The client did not trust the first answer: the same key, the same order.
            self.upload(&idem, name, bytes).await;
        }
        if !self.wait_for(&id, "AWAITING_CONFIRMATION").await {
            return;
        }
        let key = self.key.clone();
        let op = self.op.clone();
        if !self
            .advance(
                &format!("/api/v1/orders/{id}/confirm"),
                None,
                &key,
                "CONFIRMED",
            )
            .await
        {
            return;
        }
        if !self
            .advance(
                &format!("/mes/api/orders/{id}/take"),
                None,
                &op,
                "MANUFACTURING_STARTED",
            )
            .await
        {
            return;
        }
        for (step, extra) in [
            ("MANUFACTURED", None),
            ("PACKED", None),
            ("SHIPPED", Some(format!("RA{i:09}RU"))),
        ] {
            let body = serde_json::json!({ "status": step, "tracking_number": extra });
            if !self
                .advance(
                    &format!("/mes/api/orders/{id}/status"),
                    Some(body),
                    &op,
                    step,
                )
                .await
            {
                return;
            }
        }
    }
}

async fn admin_pg(url: &str) -> anyhow::Result<sqlx::PgConnection> {
    use sqlx::Connection;
    sqlx::PgConnection::connect(&format!("{url}/postgres"))
        .await
        .with_context(|| format!("PostgreSQL at {url}"))
}

async fn backlog(url: &str) -> anyhow::Result<i64> {
    use sqlx::{Connection, Row};
    let mut c = sqlx::PgConnection::connect(url).await?;
    Ok(
        sqlx::query("SELECT COUNT(*) AS n FROM outbox WHERE sent_at_ms IS NULL")
            .fetch_one(&mut c)
            .await?
            .try_get("n")?,
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let seed = args.seed.unwrap_or_else(|| rand::rng().random());
    println!(
        "chaos: seed={seed} orders={} concurrency={}",
        args.orders, args.concurrency
    );
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = std::env::temp_dir().join(format!("alexandrite-chaos-{seed}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;

    // Fresh databases and a fresh vhost for the run.
    let (crm_db, mes_db, notifier_db) = (
        format!("alx_chaos_crm_{seed}"),
        format!("alx_chaos_mes_{seed}"),
        format!("alx_chaos_notifier_{seed}"),
    );
    {
        let mut pg = admin_pg(&args.postgres).await?;
        for db in [&crm_db, &mes_db, &notifier_db] {
            sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                .execute(&mut pg)
                .await?;
            sqlx::query(&format!("CREATE DATABASE {db}"))
                .execute(&mut pg)
                .await?;
        }
    }
    let vhost = format!("alx-chaos-{seed}");
    let _ = Command::new("rabbitmqctl")
        .args(["delete_vhost", &vhost])
        .output();
    sh(&format!(
        "rabbitmqctl add_vhost {vhost} >/dev/null && rabbitmqctl set_permissions -p {vhost} guest '.*' '.*' '.*' >/dev/null"
    ))?;

    // The cache: a Redis of the run's own, so restarting it disturbs nobody else.
    let redis = Arc::new(Redis {
        port: args.redis_port,
        dir: dir.clone(),
    });
    redis.start()?;

    let ports: HashMap<&'static str, u16> = ROLES.iter().map(|(n, _)| (*n, free_port())).collect();
    let mut secret = [0u8; 16];
    rng.fill(&mut secret);
    let env = vec![
        ("ALEXANDRITE_DATA_DIR".into(), dir.display().to_string()),
        (
            "ALEXANDRITE_CRM__DATABASE_URL".into(),
            format!("{}/{crm_db}", args.postgres),
        ),
        (
            "ALEXANDRITE_MES__DATABASE_URL".into(),
            format!("{}/{mes_db}", args.postgres),
        ),
        (
            "ALEXANDRITE_BUS__URL".into(),
            format!("{}/{vhost}", args.amqp),
        ),
        (
            "ALEXANDRITE_IDENTITY_SECRET".into(),
            secret.iter().map(|b| format!("{b:02x}")).collect(),
        ),
        (
            "ALEXANDRITE_GATEWAY__CRM_URL".into(),
            format!("http://127.0.0.1:{}", ports["crm"]),
        ),
        (
            "ALEXANDRITE_GATEWAY__MES_URL".into(),
            format!("http://127.0.0.1:{}", ports["mes"]),
        ),
        (
            "ALEXANDRITE_GATEWAY__NOTIFIER_URL".into(),
            format!("http://127.0.0.1:{}", ports["notifier"]),
        ),
        (
            "ALEXANDRITE_NOTIFIER__DATABASE_URL".into(),
            format!("{}/{notifier_db}", args.postgres),
        ),
        (
            "ALEXANDRITE_NOTIFIER__MAIL_DIR".into(),
            dir.join("mail").display().to_string(),
        ),
        ("ALEXANDRITE_RECONCILE__GRACE_SECONDS".into(), "0".into()),
        (
            "ALEXANDRITE_CACHE__URL".into(),
            format!("redis://127.0.0.1:{}/0", args.redis_port),
        ),
        ("RUST_LOG".into(), "info,sqlx=warn,lapin=warn".into()),
    ];
    let dep = Arc::new(Deployment {
        bin: args.bin.clone(),
        dir: dir.clone(),
        env,
        ports,
        children: Mutex::new(HashMap::new()),
    });
    for (name, _) in ROLES {
        dep.start(name)?;
        dep.ready(name, Duration::from_secs(60)).await?;
    }
    println!("chaos: deployment up in {} (logs there)", dir.display());

    let creds = std::fs::read_to_string(dir.join("demo-credentials.txt"))?;
    let key = creds
        .lines()
        .find_map(|l| l.split("B2B API key (org brand-demo): ").nth(1))
        .context("demo key")?
        .trim()
        .to_string();
    let out = dep.cli(&[
        "users",
        "create",
        "--role",
        "operator",
        "--email",
        "chaos@ops.test",
        "--password",
        "chaos-operator",
        "--name",
        "Chaos Operator",
    ])?;
    anyhow::ensure!(
        out.status.success(),
        "creating the operator: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let op = String::from_utf8(
        dep.cli(&["keys", "create", "--email", "chaos@ops.test"])?
            .stdout,
    )?
    .trim()
    .to_string();

    let models: Vec<(String, Vec<u8>)> = [
        "ring_showcase_ring.bin.stl",
        "generated/cube_10mm_12tri.bin.stl",
        "guacanati_pendant.ascii.stl",
    ]
    .iter()
    .map(|m| {
        Ok((
            m.rsplit('/').next().unwrap().to_string(),
            std::fs::read(args.models.join(m)).with_context(|| format!("model {m}"))?,
        ))
    })
    .collect::<anyhow::Result<_>>()?;

    let ctx = Arc::new(Ctx {
        base: format!("http://127.0.0.1:{}", dep.ports["gateway"]),
        key,
        op,
        client: Client::builder().timeout(Duration::from_secs(10)).build()?,
        tally: Mutex::new(Tally::default()),
        deadline: Instant::now() + Duration::from_secs(args.drain_seconds + args.orders as u64),
    });

    // The fault schedule: every kind at least N times, shuffled, spread over the run.
    let kinds = [
        Fault::KillPricing,
        Fault::KillMes,
        Fault::KillCrm,
        Fault::KillNotifier,
        Fault::RestartRabbit,
        Fault::RestartPostgres,
        Fault::RestartRedis,
        Fault::Poison,
    ];
    let mut schedule: Vec<Fault> = kinds
        .iter()
        .flat_map(|k| std::iter::repeat_n(*k, args.faults_per_kind))
        .collect();
    schedule.shuffle(&mut rng);
    let gaps: Vec<u64> = schedule
        .iter()
        .map(|_| rng.random_range(1500..4000))
        .collect();
    let poison_ids = Arc::new(Mutex::new(Vec::<String>::new()));
    let workload_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let injector = {
        let redis = redis.clone();
        let (dep, poison_ids, done, amqp, pgv, pg) = (
            dep.clone(),
            poison_ids.clone(),
            workload_done.clone(),
            format!("{}/{vhost}", args.amqp),
            args.pg_version.clone(),
            args.postgres.clone(),
        );
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
        // Its own thread and runtime: faults keep coming however busy the workload is.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::spawn(move || {
            rt.block_on(async move {
            let mut counts: BTreeMap<Fault, usize> = BTreeMap::new();
            for (fault, gap) in schedule.into_iter().zip(gaps) {
                tokio::time::sleep(Duration::from_millis(gap)).await;
                let result: anyhow::Result<()> = async {
                    match fault {
                        Fault::KillPricing | Fault::KillMes | Fault::KillCrm | Fault::KillNotifier => {
                            let name = match fault {
                                Fault::KillMes => "mes",
                                Fault::KillCrm => "crm",
                                Fault::KillNotifier => "notifier",
                                _ => if rng.random_bool(0.5) { "pricing-1" } else { "pricing-2" },
                            };
                            dep.kill9(name);
                            tokio::time::sleep(Duration::from_millis(rng.random_range(200..1500))).await;
                            dep.start(name)?;
                            dep.ready(name, Duration::from_secs(60)).await
                        }
                        Fault::RestartRabbit => sh("rabbitmqctl stop_app >/dev/null && sleep 1 && rabbitmqctl start_app >/dev/null"),
                        // A checkpoint first keeps crash recovery short (the tests before
                        // may have left minutes of WAL: replaying it took 5 minutes on a
                        // loaded machine), and pg_ctl may wait up to 5 minutes for it.
                        // Our processes still lose every connection and every
                        // uncommitted transaction, as in a crash.
                        Fault::RestartPostgres => sh(&format!(
                            "psql -q '{pg}/postgres' -c CHECKPOINT >/dev/null 2>&1; \
                             pg_ctlcluster --skip-systemctl-redirect {pgv} main restart -m immediate -- -t 300"
                        )),
                        Fault::RestartRedis => {
                            redis.kill();
                            tokio::time::sleep(Duration::from_millis(rng.random_range(200..1500))).await;
                            redis.start()
                        }
                        Fault::Poison => {
                            let bus = adapters::bus::open(&amqp).await?;
                            let mut env = domain::events::Envelope::new(
                                "chaos",
                                &domain::events::OrderConfirmed { order_id: domain::OrderId::new(), actor: domain::events::Actor::system("chaos") },
                            );
                            env.kind = "order.priced".into(); // a payload no consumer can read
                            bus.publish(&env).await?;
                            poison_ids.lock().unwrap().push(env.event_id.to_string());
                            Ok(())
                        }
                    }
                }
                .await;
                match result {
                    Ok(()) => *counts.entry(fault).or_default() += 1,
                    Err(e) => eprintln!("chaos: injecting {fault:?} failed: {e:#}"),
                }
                println!("chaos: injected {fault:?}");
            }
            let _ = done;
            counts
        })
        })
    };

    // The service manager: roles that exit by themselves are started again.
    let kept = Arc::new(Mutex::new(Vec::<&'static str>::new()));
    let keeper = {
        let (dep, kept) = (dep.clone(), kept.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let dep = dep.clone();
                if let Ok(names) = tokio::task::spawn_blocking(move || dep.keep()).await {
                    for n in &names {
                        println!("chaos: {n} exited by itself; started again");
                    }
                    kept.lock().unwrap().extend(names);
                }
            }
        })
    };

    // The workload.
    let started = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(args.concurrency));
    let mut tasks = vec![];
    for i in 0..args.orders {
        let (name, bytes) = models[i % models.len()].clone();
        let twice = rng.random_bool(0.1);
        let (ctx, sem) = (ctx.clone(), sem.clone());
        let idem = format!("chaos-{seed}-{i}");
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire().await.unwrap();
            ctx.life(i, idem, &name, &bytes, twice).await;
        }));
    }
    futures::future::join_all(tasks).await;
    workload_done.store(true, std::sync::atomic::Ordering::SeqCst);
    let counts = tokio::task::spawn_blocking(move || injector.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the fault injector panicked"))?;
    println!(
        "chaos: workload finished in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    // Drain: every accepted order must reach SHIPPED.
    let accepted: BTreeMap<String, HashSet<String>> = ctx.tally.lock().unwrap().accepted.clone();
    let mut stuck = vec![];
    let mut unexpected_history = 0;
    for ids in accepted.values() {
        for id in ids {
            let mut last = None;
            while Instant::now() < ctx.deadline {
                last = ctx.status(id).await;
                if last.as_ref().is_some_and(|(s, _)| s == "SHIPPED") {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            match last {
                Some((s, v)) if s == "SHIPPED" => {
                    let h: Vec<&str> = v["history"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|h| h["status"].as_str())
                        .collect();
                    if h != ORDER {
                        unexpected_history += 1;
                        ctx.unexpected(format!("order {id} history {h:?}"));
                    }
                }
                other => stuck.push(format!(
                    "{id}: {}",
                    other
                        .map(|(s, _)| s)
                        .unwrap_or_else(|| "unreachable".into())
                )),
            }
        }
    }

    // Every status of every shipped order told by e-mail (an invariant), and
    // how many were told twice: the delivery log is unique per order, status,
    // channel and address, but a message whose success could not be recorded
    // (the database restarting at that moment) is sent again — at least once,
    // not exactly once. Each attempt writes its own file. Waits for the
    // notifier to catch up, within the run's deadline.
    let shipped: Vec<String> = accepted.values().flatten().cloned().collect();
    let (untold, twice) = loop {
        let told = mails_by_order_and_status(&dir.join("mail"));
        let mut untold = 0;
        let mut twice = 0;
        for id in &shipped {
            for status in ORDER {
                match told
                    .get(&(id.clone(), status.to_string()))
                    .copied()
                    .unwrap_or(0)
                {
                    0 => untold += 1,
                    1 => {}
                    _ => twice += 1,
                }
            }
        }
        if untold == 0 || Instant::now() >= ctx.deadline {
            break (untold, twice);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };

    // The tenant's orders, all pages.
    let mut listed: HashSet<String> = HashSet::new();
    let mut path = "/api/v1/orders?limit=100".to_string();
    loop {
        let r: Value = ctx
            .client
            .get(format!("{}{path}", ctx.base))
            .bearer_auth(&ctx.key)
            .send()
            .await?
            .json()
            .await?;
        listed.extend(
            r["orders"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|o| o["order_id"].as_str().map(String::from)),
        );
        match r["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/orders?limit=100&cursor={c}"),
            None => break,
        }
    }
    let accepted_ids: HashSet<String> = accepted.values().flatten().cloned().collect();
    let lost = accepted_ids.difference(&listed).count();
    let duplicated = accepted.values().map(|ids| ids.len() - 1).sum::<usize>()
        + listed.difference(&accepted_ids).count();
    let never_accepted = args.orders - accepted.len();

    // Dead letters: only the poison. Outboxes: empty. CRM and MES: agree.
    let dlq = dep.cli(&["dlq", "list", "--json"])?;
    let dead: Vec<Value> = String::from_utf8_lossy(&dlq.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let poison: HashSet<String> = poison_ids.lock().unwrap().iter().cloned().collect();
    let foreign_dead = dead
        .iter()
        .filter(|d| !poison.contains(d["event_id"].as_str().unwrap_or("")))
        .count();
    let backlog_crm = backlog(&format!("{}/{crm_db}", args.postgres)).await?;
    let backlog_mes = backlog(&format!("{}/{mes_db}", args.postgres)).await?;
    let rec = dep.cli(&["reconcile", "--remote", "--json"])?;
    let rec: Value = serde_json::from_slice(&rec.stdout).unwrap_or(Value::Null);
    let differences = rec["differences"]
        .as_array()
        .map(|d| d.len())
        .unwrap_or(usize::MAX);

    keeper.abort();
    let kept = kept.lock().unwrap().clone();
    // A panic anywhere is a bug even when a supervisor restarted the task
    // (the stall of an earlier 5,000-order run was one).
    let panics = panics_in_logs(&dir);

    let tally = ctx.tally.lock().unwrap();
    let unexpected = tally.unexpected.len() + never_accepted;
    println!(
        "chaos: faults {}",
        counts
            .iter()
            .map(|(k, v)| format!("{k:?}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "chaos: client retries={} orders accepted={} listed={}",
        tally.retries,
        accepted.len(),
        listed.len()
    );
    println!(
        "chaos: dlq={} (poison injected={}, other={foreign_dead})",
        dead.len(),
        poison.len()
    );
    println!("chaos: outbox backlog crm={backlog_crm} mes={backlog_mes}");
    println!(
        "chaos: e-mails: statuses never told={untold} told more than once={twice} (of {} order statuses; sends are at least once)",
        shipped.len() * ORDER.len()
    );
    println!(
        "chaos: reconciliation checked={} differences={differences}",
        rec["checked"]
    );
    println!(
        "chaos: processes that exited by themselves and were started again={} {kept:?}",
        kept.len()
    );
    println!("chaos: panics in the processes' logs={}", panics.len());
    for p in panics.iter().take(5) {
        println!("chaos: panic {p}");
    }
    for s in stuck.iter().take(10) {
        println!("chaos: stuck {s}");
    }
    println!(
        "lost={lost} duplicated={duplicated} stuck={} unexpected={unexpected} seed={seed}",
        stuck.len()
    );
    let missing_kinds = kinds
        .iter()
        .filter(|k| counts.get(k).copied().unwrap_or(0) == 0)
        .count();
    let ok = lost == 0
        && duplicated == 0
        && stuck.is_empty()
        && unexpected == 0
        && unexpected_history == 0
        && foreign_dead == 0
        && dead.len() == poison.len()
        && backlog_crm == 0
        && backlog_mes == 0
        && differences == 0
        && panics.is_empty()
        && untold == 0
        && missing_kinds == 0;
    drop(tally);
    drop(dep);
    redis.kill();
    if ok {
        let mut pg = admin_pg(&args.postgres).await?;
        for db in [&crm_db, &mes_db, &notifier_db] {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                .execute(&mut pg)
                .await;
        }
        let _ = Command::new("rabbitmqctl")
            .args(["delete_vhost", &vhost])
            .output();
        let _ = std::fs::remove_dir_all(&dir);
        println!("chaos: PASSED");
        Ok(())
    } else {
        bail!(
            "an invariant failed (seed {seed}); logs in {}",
            dir.display()
        )
    }
}

/// Lines of the deployment's logs (`*.log` in `dir`) where a thread panicked.
fn panics_in_logs(dir: &std::path::Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return vec![];
    };
    let mut found = vec![];
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "log")
            && let Ok(text) = std::fs::read_to_string(&path)
        {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            found.extend(
                text.lines()
                    .filter(|l| l.contains("panicked at"))
                    .map(|l| format!("{name}: {l}")),
            );
        }
    }
    found
}

/// `.eml` files the notifier wrote (`<order>-<status>-<delivery>.eml`),
/// counted by order and status.
fn mails_by_order_and_status(dir: &std::path::Path) -> HashMap<(String, String), usize> {
    let mut told = HashMap::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(stem) = name.strip_suffix(".eml") else {
            continue;
        };
        // The order id is a UUID (36 characters); the status follows it.
        if stem.len() > 37 && !stem.starts_with('.') {
            let (order, rest) = stem.split_at(36);
            if let Some(status) = ORDER
                .iter()
                .find(|s| rest[1..].starts_with(&format!("{s}-")))
            {
                *told
                    .entry((order.to_string(), status.to_string()))
                    .or_default() += 1;
            }
        }
    }
    told
}
