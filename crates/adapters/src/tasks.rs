//! Background tasks that must not die quietly: outbox relays, the queue's
//! listener, the SLA announcer, sweeps, reconciliation.
//!
//! A task that panics or returns would otherwise leave its process answering
//! "ready" while events pile up in an outbox (seen in a 5,000-order chaos run:
//! a tracing panic killed a task and 176 rows waited for ever). Each task here
//! runs under a supervisor that logs why it ended, counts a restart
//! (`alexandrite_task_restarts_total{task}`) and runs a fresh one after a
//! backoff; readiness fails while one is down.

use crate::metrics::Metrics;
use futures::FutureExt;
use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The first wait before a restart; it doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A task that ran this long before failing starts again from [`MIN_BACKOFF`].
const HEALTHY_RUN: Duration = Duration::from_secs(60);

/// What one supervised task is doing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskState {
    /// False between a failure and the restart.
    pub running: bool,
    pub restarts: u64,
    /// Why it last ended ("panicked: …" or "returned").
    pub last_failure: Option<String>,
}

/// The supervised tasks of one process. Cheap to clone; clones share the state.
#[derive(Clone)]
pub struct Tasks {
    states: Arc<Mutex<BTreeMap<&'static str, TaskState>>>,
    metrics: Metrics,
    /// The first and the longest wait before a restart.
    backoff: (Duration, Duration),
}

/// Stops its task (and the supervisor) when dropped or aborted.
pub struct Supervised(tokio::task::JoinHandle<()>);

impl Supervised {
    pub fn abort(&self) {
        self.0.abort();
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Tasks {
    pub fn new(metrics: Metrics) -> Tasks {
        Tasks::with_backoff(metrics, MIN_BACKOFF, MAX_BACKOFF)
    }

    /// With other waits before a restart (tests).
    pub fn with_backoff(metrics: Metrics, min: Duration, max: Duration) -> Tasks {
        Tasks {
            states: Arc::default(),
            metrics,
            backoff: (min, max),
        }
    }

    /// Runs `make()` as a task under a supervisor: whenever the future panics
    /// or returns, the supervisor logs why, counts a restart and runs a fresh
    /// `make()` after a backoff (1 s, doubling to 30 s; back to 1 s after a
    /// minute of running). Dropping or aborting the handle stops both.
    pub fn spawn<F, Fut>(&self, name: &'static str, make: F) -> Supervised
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.set(name, |s| s.running = true);
        self.metrics.task_restarts_declare(name);
        let me = self.clone();
        let (min, max) = self.backoff;
        Supervised(tokio::spawn(async move {
            let mut backoff = min;
            loop {
                let started = Instant::now();
                // The future runs in this task, so aborting the supervisor drops it.
                let why = match AssertUnwindSafe(make()).catch_unwind().await {
                    Ok(()) => "returned".to_string(),
                    Err(panic) => format!("panicked: {}", panic_message(panic.as_ref())),
                };
                if started.elapsed() >= HEALTHY_RUN {
                    backoff = min;
                }
                tracing::error!(task = name, why = %why, restart_in_ms = backoff.as_millis() as u64,
                    "background task ended: restarting it");
                me.metrics.task_restarted(name);
                me.set(name, |s| {
                    s.running = false;
                    s.restarts += 1;
                    s.last_failure = Some(why.clone());
                });
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(max);
                me.set(name, |s| s.running = true);
            }
        }))
    }

    fn set(&self, name: &'static str, f: impl FnOnce(&mut TaskState)) {
        f(self.states.lock().unwrap().entry(name).or_default());
    }

    /// Every task by name.
    pub fn states(&self) -> Vec<(&'static str, TaskState)> {
        let states = self.states.lock().unwrap();
        states.iter().map(|(k, v)| (*k, v.clone())).collect()
    }

    /// For readiness: an error naming each task that is down now and why.
    pub fn check(&self) -> Result<(), String> {
        let down: Vec<String> = self
            .states()
            .into_iter()
            .filter(|(_, s)| !s.running)
            .map(|(name, s)| {
                format!(
                    "{name} is down ({}; {} restarts)",
                    s.last_failure.as_deref().unwrap_or("ended"),
                    s.restarts
                )
            })
            .collect();
        if down.is_empty() {
            Ok(())
        } else {
            Err(down.join("; "))
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Polls `ok` every 10 ms for up to 10 s.
    async fn until(what: &str, ok: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ok() {
            assert!(Instant::now() < deadline, "timed out waiting for: {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn a_panicking_task_is_restarted_counted_and_reported_while_down() {
        let metrics = Metrics::new();
        let tasks = Tasks::with_backoff(
            metrics.clone(),
            Duration::from_millis(300),
            Duration::from_secs(5),
        );
        let runs = Arc::new(AtomicU32::new(0));
        let r = runs.clone();
        let _task = tasks.spawn("relay", move || {
            let r = r.clone();
            async move {
                // The first two runs panic, the third lives.
                match r.fetch_add(1, Ordering::SeqCst) {
                    0 => panic!("tried to clone a span that already closed"),
                    1 => panic!("{}", String::from("second")),
                    _ => std::future::pending().await,
                }
            }
        });
        // Down, with the reason, for the 300 ms before its restart.
        until("the first failure reported", || tasks.check().is_err()).await;
        let err = tasks.check().unwrap_err();
        assert_eq!(
            err,
            "relay is down (panicked: tried to clone a span that already closed; 1 restarts)"
        );
        assert_eq!(
            runs.load(Ordering::SeqCst),
            1,
            "not restarted before its backoff"
        );
        until("the second failure", || {
            tasks
                .check()
                .is_err_and(|e| e.contains("panicked: second; 2 restarts"))
        })
        .await;
        until("the third run, which lives", || {
            runs.load(Ordering::SeqCst) == 3 && tasks.check().is_ok()
        })
        .await;
        let state = &tasks.states()[0];
        assert_eq!(
            (state.0, state.1.restarts, state.1.running),
            ("relay", 2, true)
        );
        let text = metrics.encode();
        assert!(
            text.contains("alexandrite_task_restarts_total{task=\"relay\"} 2"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_task_that_returns_is_restarted_and_dropping_the_handle_stops_it() {
        let tasks = Tasks::with_backoff(
            Metrics::new(),
            Duration::from_millis(20),
            Duration::from_millis(20),
        );
        let runs = Arc::new(AtomicU32::new(0));
        let r = runs.clone();
        let task = tasks.spawn("sweep", move || {
            r.fetch_add(1, Ordering::SeqCst);
            async {}
        });
        until("restarted twice", || runs.load(Ordering::SeqCst) >= 3).await;
        assert_eq!(
            tasks.states()[0].1.last_failure.as_deref(),
            Some("returned")
        );
        drop(task);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let after_drop = runs.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            runs.load(Ordering::SeqCst),
            after_drop,
            "no run after the handle is dropped"
        );
    }
}
