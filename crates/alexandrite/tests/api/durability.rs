//! Kill -9 the real binary in the middle of the flow, start it again: every
//! order completes, none is lost or applied twice.

use crate::helpers::{fresh_database, history, model, production, wait_status};
use reqwest::{Client, StatusCode};
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Server {
    child: Child,
}

/// Environment for the children: the production profile's database URLs, if any.
static ENV: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();

impl Server {
    async fn start(dir: &Path, port: u16) -> Server {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("server.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_alexandrite"))
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(dir)
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .envs(ENV.get().cloned().unwrap_or_default())
            .spawn()
            .expect("start alexandrite");
        let client = Client::new();
        for _ in 0..300 {
            if let Ok(r) = client
                .get(format!("http://127.0.0.1:{port}/health/ready"))
                .send()
                .await
            {
                if r.status() == StatusCode::OK {
                    return Server { child };
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "alexandrite did not become ready; log:\n{}",
            std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
        );
    }

    /// SIGKILL: no graceful anything.
    fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn b2b_key(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("demo-credentials.txt")).unwrap();
    text.lines()
        .find_map(|l| l.split("B2B API key (org brand-demo): ").nth(1))
        .unwrap()
        .trim()
        .to_string()
}

#[tokio::test]
async fn killed_mid_flow_it_completes_after_a_restart_with_nothing_lost_or_doubled() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = Client::new();
    let ring = model("ring_showcase_ring.bin.stl");
    if production() {
        let env = vec![
            (
                "ALEXANDRITE_CRM__DATABASE_URL".to_string(),
                fresh_database("crm").await,
            ),
            (
                "ALEXANDRITE_MES__DATABASE_URL".to_string(),
                fresh_database("mes").await,
            ),
        ];
        ENV.set(env).unwrap();
    }

    // 1. Uploads accepted, then kill -9 at once: pricing is mid-way for most of them.
    let server = Server::start(dir.path(), port).await;
    let key = b2b_key(dir.path());
    let mut ids = vec![];
    for i in 0..6 {
        let form = reqwest::multipart::Form::new()
            .part(
                "file",
                reqwest::multipart::Part::bytes(ring.clone()).file_name(format!("ring{i}.stl")),
            )
            .text("material", "AU750Y");
        let r = client
            .post(format!("{base}/api/v1/models"))
            .bearer_auth(&key)
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        ids.push(
            r.json::<Value>().await.unwrap()["order_id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    server.kill9();

    // 2. Restart: every order gets priced, exactly once.
    let server = Server::start(dir.path(), port).await;
    for id in &ids {
        let o = wait_status(&client, &base, &key, id, "AWAITING_CONFIRMATION").await;
        assert_eq!(
            history(&o),
            ["PRICING", "AWAITING_CONFIRMATION"],
            "order {id}"
        );
    }

    // 3. Confirm them all and kill -9 right away: the confirmations are in CRM's outbox.
    for id in &ids {
        let r = client
            .post(format!("{base}/api/v1/orders/{id}/confirm"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    server.kill9();

    // 4. Restart: MES's queue holds every order exactly once.
    let _server = Server::start(dir.path(), port).await;
    let op_key = String::from_utf8(
        Command::new(env!("CARGO_BIN_EXE_alexandrite"))
            .args([
                "keys",
                "create",
                "--email",
                "oleg@alexandrite.local",
                "--data-dir",
            ])
            .arg(dir.path())
            .envs(ENV.get().cloned().unwrap_or_default())
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    assert!(
        op_key.starts_with("alx_"),
        "keys create prints only the key: {op_key:?}"
    );
    let mut queued: Vec<String> = vec![];
    for _ in 0..400 {
        let q: Value = client
            .get(format!("{base}/mes/api/queue"))
            .bearer_auth(&op_key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        queued = q["orders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["order_id"].as_str().unwrap().to_string())
            .collect();
        if queued.len() >= ids.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let mut expected = ids.clone();
    expected.reverse();
    assert_eq!(queued, expected, "every confirmed order once, newest first");
    let list: Value = client
        .get(format!("{base}/api/v1/orders?limit=100"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        list["orders"].as_array().unwrap().len(),
        ids.len(),
        "no order lost or duplicated in the CRM"
    );
    for id in &ids {
        let o: Value = client
            .get(format!("{base}/mes/api/orders/{id}"))
            .bearer_auth(&op_key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            history(&o),
            ["PRICING", "AWAITING_CONFIRMATION", "CONFIRMED"],
            "MES history of {id}"
        );
    }
}
