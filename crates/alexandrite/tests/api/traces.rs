//! One upload, one trace across processes: the roles run as separate
//! processes of the real binary on PostgreSQL and RabbitMQ, exporting spans
//! over OTLP/HTTP (configured by the standard `OTEL_*` variables) to a
//! receiver of the test's own. The upload's trace must hold spans of every
//! service it passed through — gateway, mes, pricing, crm — with one root and
//! every parent a span of the same trace; the processes' log lines carry its
//! trace id; the CRM journey names it.

use crate::helpers::{fresh_database, fresh_vhost, model, wait_status};
use axum::body::Bytes;
use axum::extract::State;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message;
use reqwest::StatusCode;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A span as the receiver got it.
#[derive(Debug, Clone)]
struct Got {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent: String,
    attributes: BTreeMap<String, String>,
}

fn text(v: &Option<AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

fn attrs(kvs: &[KeyValue]) -> BTreeMap<String, String> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), text(&kv.value)))
        .collect()
}

type Received = Arc<Mutex<Vec<Got>>>;

/// `POST /v1/traces`: OTLP/HTTP with a protobuf body, as a collector takes it.
async fn collect(State(spans): State<Received>, body: Bytes) -> impl axum::response::IntoResponse {
    let Ok(req) = ExportTraceServiceRequest::decode(body) else {
        return (StatusCode::BAD_REQUEST, Vec::new());
    };
    let mut got = spans.lock().unwrap();
    for rs in req.resource_spans {
        let resource = attrs(&rs.resource.map(|r| r.attributes).unwrap_or_default());
        let service = resource.get("service.name").cloned().unwrap_or_default();
        for ss in rs.scope_spans {
            for s in ss.spans {
                got.push(Got {
                    service: service.clone(),
                    name: s.name,
                    trace_id: hex::encode(&s.trace_id),
                    span_id: hex::encode(&s.span_id),
                    parent: hex::encode(&s.parent_span_id),
                    attributes: attrs(&s.attributes),
                });
            }
        }
    }
    (
        StatusCode::OK,
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
}

/// The processes of one deployment, stopped (SIGTERM, then SIGKILL) when dropped.
struct Processes(Vec<(&'static str, Child)>);

impl Processes {
    /// SIGTERM to each, then wait: a graceful stop flushes its spans.
    fn terminate(&mut self) {
        for (name, child) in &mut self.0 {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                match child.try_wait() {
                    Ok(Some(status)) => {
                        assert!(status.success(), "{name} stopped with {status}");
                        break;
                    }
                    _ if Instant::now() > deadline => {
                        let _ = child.kill();
                        panic!("{name} did not stop within 30 s of SIGTERM");
                    }
                    _ => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        }
        self.0.clear();
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        for (_, c) in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn ready(port: u16, name: &str, logs: &Path) {
    let url = format!("http://127.0.0.1:{port}/health/ready");
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(r) = reqwest::get(&url).await
            && r.status() == StatusCode::OK
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = std::fs::read_to_string(logs.join(format!("{name}.log"))).unwrap_or_default();
    panic!("{name} not ready within 60 s; its log:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_upload_is_one_trace_across_gateway_mes_pricing_and_crm() {
    // The receiver.
    let spans: Received = Arc::default();
    let receiver = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp = format!("http://{}", receiver.local_addr().unwrap());
    let router = axum::Router::new()
        .route("/v1/traces", axum::routing::post(collect))
        .with_state(spans.clone());
    tokio::spawn(async move { axum::serve(receiver, router).await });

    // The deployment: one process per role on the production profile.
    let dir = tempfile::tempdir().unwrap();
    let ports: HashMap<&str, u16> = ["gateway", "crm", "mes", "pricing"]
        .into_iter()
        .map(|r| (r, free_port()))
        .collect();
    let vhost = fresh_vhost();
    let env: Vec<(&str, String)> = vec![
        ("ALEXANDRITE_DATA_DIR", dir.path().display().to_string()),
        ("ALEXANDRITE_CRM__DATABASE_URL", fresh_database("crm").await),
        ("ALEXANDRITE_MES__DATABASE_URL", fresh_database("mes").await),
        ("ALEXANDRITE_BUS__URL", vhost.clone()),
        (
            "ALEXANDRITE_IDENTITY_SECRET",
            uuid::Uuid::new_v4().simple().to_string(),
        ),
        (
            "ALEXANDRITE_GATEWAY__CRM_URL",
            format!("http://127.0.0.1:{}", ports["crm"]),
        ),
        (
            "ALEXANDRITE_GATEWAY__MES_URL",
            format!("http://127.0.0.1:{}", ports["mes"]),
        ),
        ("ALEXANDRITE_RECONCILE__INTERVAL_SECONDS", "0".into()),
        (
            "ALEXANDRITE_TELEMETRY__TRACE_URL",
            "http://jaeger.test/trace/{trace_id}".into(),
        ),
        ("RUST_LOG", "info,sqlx=warn,lapin=warn".into()),
        // Only the standard variables: where to send, nothing else. The batch
        // delay stays at its default (5 s): the spans of the last seconds
        // arrive only because a stopping process flushes them.
        ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.clone()),
    ];
    let mut procs = Processes(vec![]);
    // The CRM first: it creates the demo accounts the test uses.
    for role in ["crm", "mes", "pricing", "gateway"] {
        let log = std::fs::File::create(dir.path().join(format!("{role}.log"))).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_alexandrite"))
            .args(["serve", "--role", role, "--listen"])
            .arg(format!("127.0.0.1:{}", ports[role]))
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env_remove("OTEL_SERVICE_NAME")
            .env_remove("OTEL_TRACES_EXPORTER")
            .env_remove("OTEL_SDK_DISABLED")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        procs.0.push((role, child));
        ready(ports[role], role, dir.path()).await;
    }
    let creds = std::fs::read_to_string(dir.path().join("demo-credentials.txt")).unwrap();
    let key = creds
        .lines()
        .find_map(|l| l.split("B2B API key (org brand-demo): ").nth(1))
        .expect("the demo key")
        .trim()
        .to_string();

    // One upload through the gateway, priced by the worker, seen by the CRM.
    let base = format!("http://127.0.0.1:{}", ports["gateway"]);
    let client = reqwest::Client::new();
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(model("generated/cube_10mm_12tri.bin.stl"))
                .file_name("cube.stl"),
        )
        .text("material", "AG925");
    let r = client
        .post(format!("{base}/api/v1/models"))
        .bearer_auth(&key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let id = r.json::<serde_json::Value>().await.unwrap()["order_id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_status(&client, &base, &key, &id, "AWAITING_CONFIRMATION").await;
    // The journey in the back office (through the gateway) names the trace.
    let manager = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let login = manager
        .post(format!("{base}/login"))
        .form(&[
            ("email", "maria@alexandrite.local"),
            ("password", "manager-demo-2026"),
        ])
        .send()
        .await
        .unwrap();
    assert!(login.status().is_success(), "{}", login.status());
    let journey = manager
        .get(format!("{base}/crm/orders/{id}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    procs.terminate();
    let _ = Command::new("timeout")
        .args(["30", "rabbitmqctl", "-q", "delete_vhost"])
        .arg(vhost.rsplit('/').next().unwrap())
        .output();

    // The upload's trace is the one MES received the model in. The receiver
    // may still be reading the last exports.
    let deadline = Instant::now() + Duration::from_secs(10);
    let trace = loop {
        let got = spans.lock().unwrap().clone();
        let trace = got
            .iter()
            .find(|s| s.name == "accept" && s.attributes.get("order_id") == Some(&id))
            .map(|s| s.trace_id.clone());
        let done = trace.as_ref().is_some_and(|t| {
            got.iter()
                .filter(|s| &s.trace_id == t && s.name == "crm.consume")
                .count()
                >= 2
        });
        if done || Instant::now() > deadline {
            break trace.expect("MES's intake span was exported");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let all = spans.lock().unwrap().clone();
    let ours: Vec<&Got> = all.iter().filter(|s| s.trace_id == trace).collect();
    let show = || {
        ours.iter()
            .map(|s| format!("{} {} {} <- {}", s.service, s.name, s.span_id, s.parent))
            .collect::<Vec<_>>()
            .join("\n")
    };

    // Spans of every service the upload passed through.
    let services: BTreeSet<&str> = ours.iter().map(|s| s.service.as_str()).collect();
    assert_eq!(
        services,
        BTreeSet::from(["crm", "gateway", "mes", "pricing"]),
        "{}",
        show()
    );
    // One root — the gateway's request — and every other span's parent is a
    // span of this trace.
    let ids: BTreeSet<&str> = ours.iter().map(|s| s.span_id.as_str()).collect();
    assert_eq!(ids.len(), ours.len(), "span ids are unique");
    let roots: Vec<&&Got> = ours.iter().filter(|s| s.parent.is_empty()).collect();
    assert_eq!(roots.len(), 1, "one root:\n{}", show());
    assert_eq!(
        (roots[0].service.as_str(), roots[0].name.as_str()),
        ("gateway", "POST /api/v1/models")
    );
    for s in &ours {
        assert!(
            s.parent.is_empty() || ids.contains(s.parent.as_str()),
            "{} {} has a parent outside the trace:\n{}",
            s.service,
            s.name,
            show()
        );
    }
    // Each process continues another's span: the links cross the processes
    // over HTTP (gateway → mes) and the broker (mes → pricing → mes → crm).
    let by_id: HashMap<&str, &Got> = ours.iter().map(|s| (s.span_id.as_str(), *s)).collect();
    let crossing = |from: &str, to: &str, name: &str| {
        ours.iter().any(|s| {
            s.service == to
                && s.name == name
                && by_id
                    .get(s.parent.as_str())
                    .is_some_and(|p| p.service == from)
        })
    };
    assert!(
        crossing("gateway", "mes", "POST /api/v1/models"),
        "{}",
        show()
    );
    assert!(crossing("mes", "pricing", "bus.consume"), "{}", show());
    assert!(crossing("pricing", "mes", "bus.consume"), "{}", show());
    assert!(crossing("mes", "crm", "bus.consume"), "{}", show());
    for name in [
        "accept",
        "outbox.publish",
        "pricing.job",
        "mes.consume",
        "crm.consume",
    ] {
        assert!(
            ours.iter().any(|s| s.name == name),
            "no {name} span:\n{}",
            show()
        );
    }
    // The order's spans in this trace: intake, both events to the CRM, pricing.
    let of_order = ours
        .iter()
        .filter(|s| s.attributes.get("order_id") == Some(&id))
        .count();
    assert!(
        of_order >= 8,
        "{of_order} spans name the order:\n{}",
        show()
    );
    // Every span reaches the root by its parents (no cycles).
    for s in &ours {
        let mut at = *s;
        for _ in 0..ours.len() {
            match by_id.get(at.parent.as_str()) {
                Some(p) => at = *p,
                None => break,
            }
        }
        assert!(
            at.parent.is_empty(),
            "{} {} does not reach the root",
            s.service,
            s.name
        );
    }

    // The processes' log lines of this order carry the trace id.
    for role in ["mes", "pricing", "crm"] {
        let log = std::fs::read_to_string(dir.path().join(format!("{role}.log"))).unwrap();
        let line = log
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|l| l["order_id"] == id.as_str() && l["trace_id"] == trace.as_str())
            .unwrap_or_else(|| panic!("no log line of the order in its trace in {role}:\n{log}"));
        assert_eq!(line["service"], role);
        assert_eq!(line["level"], "INFO");
        assert!(
            line["span_id"].as_str().is_some_and(|s| s.len() == 16),
            "{line}"
        );
    }
    // And the CRM's journey links the trace for PRICING and AWAITING_CONFIRMATION.
    let link = format!("href=\"http://jaeger.test/trace/{trace}\"");
    assert_eq!(journey.matches(&link).count(), 2, "{journey}");
}
