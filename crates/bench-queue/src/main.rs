//! `bench-queue`: N operators refresh the operators' queue's first page over
//! HTTP, while a customer confirms new orders and operators take others;
//! first against our endpoint, then, in the same run and under the same
//! churn, against the naive baseline. Prints p50/p95/p99 of each, end to end
//! (until the whole body is read), and last `p99_ms=… naive_p99_ms=… ratio=…`.
//!
//! Two ways to load it:
//! * `--rate 0` (saturation): each operator sends the next request as soon as
//!   the last one is answered; latency runs from the send.
//! * `--rate R`: each operator refreshes R times a second on a fixed schedule
//!   (one request at a time, as a person or a polling page does). Latency runs
//!   from the moment the request was *due*, so a server that falls behind is
//!   charged for the wait too (no coordinated omission, as in wrk2); requests
//!   still unsent when the run ends count at what they have waited so far.

use clap::Parser;
use rand::Rng;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(
    name = "bench-queue",
    about = "Load the operators' queue and print latency percentiles."
)]
struct Args {
    /// The platform's base URL.
    #[arg(long)]
    base: String,
    /// Operators' API keys (comma-separated); the operators share them round-robin.
    #[arg(long, value_delimiter = ',')]
    operator_keys: Vec<String>,
    /// A customer's key whose AWAITING_CONFIRMATION orders get confirmed during the run.
    #[arg(long)]
    customer_key: String,
    /// Operators refreshing the first page at once.
    #[arg(long, default_value_t = 50)]
    concurrency: usize,
    /// Seconds of measurement for our endpoint.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Seconds of measurement for the naive baseline.
    #[arg(long, default_value_t = 20)]
    naive_seconds: u64,
    /// Confirmations per second during the run (and as many takes).
    #[arg(long, default_value_t = 5.0)]
    churn_per_second: f64,
    /// Seconds of warm-up before each measurement (not counted).
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// Refreshes per second of each operator, on a fixed schedule, latency from
    /// when each was due; 0 = saturation (as fast as answers come back).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Query string for the first page (e.g. `material=AU585Y` or `limit=20`),
    /// on our endpoint and the baseline alike; none = the default first page.
    #[arg(long, default_value = "")]
    query: String,
}

struct Stats {
    ms: Vec<f64>,
    errors: u64,
    /// Paced requests still unsent when the run ended (in `ms` at their wait so far).
    unsent: u64,
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[i.clamp(1, sorted.len()) - 1]
}

/// `concurrency` loops GETting `path` for `warmup + seconds`; latencies after the warm-up.
async fn measure(
    client: &reqwest::Client,
    args: &Args,
    path: &str,
    seconds: u64,
) -> anyhow::Result<Stats> {
    let start = Instant::now();
    let measure_from = start + Duration::from_secs(args.warmup);
    let until = measure_from + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..args.concurrency)
        .map(|i| {
            let client = client.clone();
            let key = args.operator_keys[i % args.operator_keys.len()].clone();
            let url = format!("{}{path}", args.base);
            let period = (args.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / args.rate));
            // Operators' schedules are spread over one period, as people's are.
            let phase = period.map(|p| p.mul_f64(i as f64 / args.concurrency as f64));
            tokio::spawn(async move {
                let mut ms = vec![];
                let mut errors = 0u64;
                let mut due = start + phase.unwrap_or_default();
                let mut unsent = 0u64;
                while due < until {
                    if period.is_some() {
                        tokio::time::sleep_until(due.into()).await;
                    }
                    if Instant::now() >= until {
                        // Paced, and so far behind that the run is over: the
                        // requests still due were never sent. Each is counted
                        // at what it has waited so far (a lower bound), never
                        // dropped.
                        if let Some(p) = period {
                            while due < until {
                                if due >= measure_from {
                                    ms.push(until.duration_since(due).as_secs_f64() * 1000.0);
                                    unsent += 1;
                                }
                                due += p;
                            }
                        }
                        break;
                    }
                    let sent = Instant::now();
                    // Paced: from when it was due; saturation: from the send.
                    let from = if period.is_some() { due } else { sent };
                    let ok = match client.get(&url).bearer_auth(&key).send().await {
                        Ok(r) => {
                            let ok = r.status().is_success();
                            ok && r.bytes().await.is_ok()
                        }
                        Err(_) => false,
                    };
                    if from >= measure_from {
                        if ok {
                            ms.push(from.elapsed().as_secs_f64() * 1000.0);
                        } else {
                            errors += 1;
                        }
                    }
                    due = match period {
                        Some(p) => due + p,
                        None => Instant::now(),
                    };
                }
                (ms, errors, unsent)
            })
        })
        .collect();
    let mut all = Stats {
        ms: vec![],
        errors: 0,
        unsent: 0,
    };
    for t in tasks {
        let (ms, e, u) = t.await?;
        all.ms.extend(ms);
        all.errors += e;
        all.unsent += u;
    }
    all.ms.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    Ok(all)
}

fn report(name: &str, s: &Stats, seconds: u64) -> f64 {
    let p99 = pct(&s.ms, 99.0);
    let answered = s.ms.len() as u64 - s.unsent;
    let unsent = if s.unsent > 0 {
        format!(
            " unsent={} (behind schedule at the end, counted at their wait so far)",
            s.unsent
        )
    } else {
        String::new()
    };
    println!(
        "{name:<6} requests={:<7} errors={:<4} rps={:<8.0} p50_ms={:.2} p95_ms={:.2} p99_ms={:.2} max_ms={:.2}{unsent}",
        answered,
        s.errors,
        answered as f64 / seconds as f64,
        pct(&s.ms, 50.0),
        pct(&s.ms, 95.0),
        p99,
        s.ms.last().copied().unwrap_or(f64::NAN),
    );
    p99
}

/// Confirms the customer's waiting orders and takes queued ones, each at
/// `rate` per second, until stopped.
async fn churn(
    client: reqwest::Client,
    args: Arc<Args>,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
) {
    let period = Duration::from_secs_f64(1.0 / args.churn_per_second.max(0.01));
    let mut waiting: Vec<String> = vec![];
    let mut cursor: Option<String> = None;
    let mut tick = tokio::time::interval(period);
    let mut n = 0usize;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        if waiting.is_empty() {
            let mut url = format!(
                "{}/api/v1/orders?status=AWAITING_CONFIRMATION&limit=100",
                args.base
            );
            if let Some(c) = &cursor {
                url += &format!("&cursor={c}");
            }
            if let Ok(r) = client
                .get(&url)
                .bearer_auth(&args.customer_key)
                .send()
                .await
                && let Ok(v) = r.json::<Value>().await
            {
                waiting = v["orders"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|o| o["order_id"].as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                cursor = v["next_cursor"].as_str().map(str::to_string);
            }
        }
        if let Some(id) = waiting.pop() {
            let _ = client
                .post(format!("{}/api/v1/orders/{id}/confirm", args.base))
                .bearer_auth(&args.customer_key)
                .send()
                .await;
            done.fetch_add(1, Ordering::Relaxed);
        }
        // An operator takes one of the first page's orders (random, like people do).
        let key = &args.operator_keys[n % args.operator_keys.len()];
        n += 1;
        if let Ok(r) = client
            .get(format!("{}/mes/api/queue?limit=20", args.base))
            .bearer_auth(key)
            .send()
            .await
            && let Ok(v) = r.json::<Value>().await
            && let Some(list) = v["orders"].as_array()
            && !list.is_empty()
        {
            let pick = rand::rng().random_range(0..list.len());
            if let Some(id) = list[pick]["order_id"].as_str() {
                let _ = client
                    .post(format!("{}/mes/api/orders/{id}/take", args.base))
                    .bearer_auth(key)
                    .send()
                    .await;
                done.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Arc::new(Args::parse());
    anyhow::ensure!(
        !args.operator_keys.is_empty(),
        "--operator-keys: at least one key"
    );
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency * 2)
        .timeout(Duration::from_secs(60))
        .build()?;
    let stop = Arc::new(AtomicBool::new(false));
    let changes = Arc::new(AtomicU64::new(0));
    let churner = tokio::spawn(churn(
        client.clone(),
        args.clone(),
        stop.clone(),
        changes.clone(),
    ));
    let pace = if args.rate > 0.0 {
        format!(
            "each {:.1} times a second on a schedule ({:.0} requests/s offered; latency from when each was due)",
            args.rate,
            args.rate * args.concurrency as f64
        )
    } else {
        "each as fast as answers come back (saturation)".to_string()
    };
    println!(
        "bench-queue: {} operators refreshing the first page, {pace}; {:.1} confirmations/s and {:.1} takes/s meanwhile",
        args.concurrency, args.churn_per_second, args.churn_per_second
    );
    let q = if args.query.is_empty() {
        String::new()
    } else {
        format!("?{}", args.query.trim_start_matches('?'))
    };
    let ours = measure(&client, &args, &format!("/mes/api/queue{q}"), args.seconds).await?;
    let c1 = changes.load(Ordering::Relaxed);
    let naive = measure(
        &client,
        &args,
        &format!("/mes/api/queue/naive{q}"),
        args.naive_seconds,
    )
    .await?;
    stop.store(true, Ordering::Relaxed);
    let _ = churner.await;
    println!(
        "(ours: keyset query on partial indexes, cache-aside first page; naive: OFFSET, no index, no cache)"
    );
    let p99 = report("ours", &ours, args.seconds);
    let naive_p99 = report("naive", &naive, args.naive_seconds);
    println!(
        "queue changes during the run: {} (confirmations + takes; {c1} during ours)",
        changes.load(Ordering::Relaxed)
    );
    anyhow::ensure!(
        !ours.ms.is_empty() && !naive.ms.is_empty(),
        "no successful requests"
    );
    println!(
        "p99_ms={p99:.2} naive_p99_ms={naive_p99:.2} ratio={:.1}",
        naive_p99 / p99
    );
    Ok(())
}
