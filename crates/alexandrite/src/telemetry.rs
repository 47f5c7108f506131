//! Logs and traces.
//!
//! * Logs: one JSON object per line — `time`, `level`, `service`, `message`,
//!   `trace_id`, `span_id`, `order_id` (wherever known), then the other fields
//!   of the event and its spans. `RUST_LOG` filters (default `info`).
//! * Traces: every `tracing` span at info level or above is an OpenTelemetry
//!   span (so trace ids exist in logs, outbox rows, message headers and order
//!   histories even when nothing is exported). Spans are exported over OTLP
//!   (HTTP/protobuf) only when an endpoint is configured with the standard
//!   variables: `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`,
//!   `OTEL_TRACES_EXPORTER` (`otlp` or `none`), `OTEL_SERVICE_NAME` (default:
//!   the role), `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_EXPORTER_OTLP_HEADERS`,
//!   `OTEL_TRACES_SAMPLER[_ARG]`, `OTEL_BSP_*`, `OTEL_SDK_DISABLED`.

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde_json::Value;
use std::io::Write;
use std::sync::{Mutex, OnceLock};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Where log lines go: stdout for the server, stderr for commands whose stdout is their answer.
pub enum Sink {
    Stdout,
    Stderr,
    /// The test harness's captured output (shown when a test fails).
    Test,
}

/// The tracer provider, kept to flush it at shutdown.
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();
/// Whether spans leave the process, for the start-up line.
static EXPORTING: Mutex<Option<String>> = Mutex::new(None);

/// Logging and tracing for a process of the platform as a whole (`alexandrite`).
pub fn init(sink: Sink) {
    if let Err(e) = init_for(sink, "alexandrite") {
        eprintln!("telemetry: {e:#}");
    }
}

/// Logging and tracing for one service (`gateway`, `crm`, `mes`, `pricing`, or
/// `alexandrite` for all of them in one process). A second call does nothing.
/// Fails on an OTLP setting this build cannot honour (the process should not
/// start silently without the traces it was asked for).
pub fn init_for(sink: Sink, service: &'static str) -> anyhow::Result<()> {
    if PROVIDER.get().is_some() {
        return Ok(());
    }
    let exporter = otlp_exporter()?;
    let name = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| service.to_string());
    let resource = Resource::builder()
        .with_service_name(name)
        .with_attribute(KeyValue::new("service.namespace", "alexandrite"))
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    let mut builder = SdkTracerProvider::builder().with_resource(resource);
    if let Some((exporter, endpoint)) = exporter {
        builder = builder.with_batch_exporter(exporter);
        *EXPORTING.lock().unwrap() = Some(endpoint);
    }
    let provider = builder.build();
    let tracer = provider.tracer("alexandrite");
    if PROVIDER.set(provider).is_err() {
        return Ok(());
    }

    // Our spans, not the libraries' internals (nor the exporter's own HTTP client).
    let spans = Targets::new()
        .with_default(LevelFilter::INFO)
        .with_target("sqlx", LevelFilter::OFF)
        .with_target("lapin", LevelFilter::OFF)
        .with_target("hyper", LevelFilter::OFF)
        .with_target("hyper_util", LevelFilter::OFF)
        .with_target("reqwest", LevelFilter::OFF)
        .with_target("h2", LevelFilter::OFF)
        .with_target("opentelemetry", LevelFilter::OFF)
        .with_target("opentelemetry_sdk", LevelFilter::OFF)
        .with_target("opentelemetry_otlp", LevelFilter::OFF);
    let traces = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(spans);
    let filter = || {
        EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"))
    };
    let registry = tracing_subscriber::registry().with(traces);
    let _ = match sink {
        Sink::Stdout => registry
            .with(
                JsonLines::new(service, std::io::stdout)
                    .for_people(for_people())
                    .with_filter(filter()),
            )
            .try_init(),
        Sink::Stderr => registry
            .with(JsonLines::new(service, std::io::stderr).with_filter(filter()))
            .try_init(),
        Sink::Test => registry
            .with(
                JsonLines::new(service, tracing_subscriber::fmt::TestWriter::new())
                    .with_filter(filter()),
            )
            .try_init(),
    };
    if let Some(endpoint) = EXPORTING.lock().unwrap().as_deref() {
        tracing::info!(endpoint, "exporting traces over OTLP");
    }
    Ok(())
}

/// Whether the server's log is for a person: `ALEXANDRITE_LOG_FORMAT=text` or
/// `json` decides; otherwise text when stdout is a terminal, JSON when it is
/// a file or a pipe (a log collector).
fn for_people() -> bool {
    use std::io::IsTerminal;
    match std::env::var("ALEXANDRITE_LOG_FORMAT").as_deref() {
        Ok("text") => true,
        Ok("json") => false,
        _ => std::io::stdout().is_terminal(),
    }
}

/// `12:04:05 INFO  mes  model priced  order_id=019a… total_minor=1234567`
fn human_line(level: &tracing::Level, service: &str, fields: &[(&'static str, Value)]) -> String {
    let colour = match *level {
        tracing::Level::ERROR => "31",
        tracing::Level::WARN => "33",
        tracing::Level::INFO => "32",
        _ => "2",
    };
    let now = domain::rfc3339(domain::now());
    let time = now.get(11..19).unwrap_or(&now);
    // Control characters are escaped: a value a stranger sent cannot forge a line.
    let text = |v: &Value| match v {
        Value::String(s) if s.chars().any(char::is_control) => s.escape_debug().to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let message = fields
        .iter()
        .find(|(k, _)| *k == "message")
        .map(|(_, v)| text(v))
        .unwrap_or_default();
    let mut line = format!(
        "\x1b[2m{time}\x1b[0m \x1b[{colour}m{:<5}\x1b[0m {service:<8} {message}",
        level.as_str()
    );
    for (k, v) in fields {
        if !matches!(*k, "message" | "span_id" | "trace_id") {
            line.push_str(&format!("  \x1b[2m{k}=\x1b[0m{}", text(v)));
        }
    }
    line.push('\n');
    line
}

/// Sends the spans still buffered and stops exporting (at shutdown).
pub fn shutdown() {
    if let Some(p) = PROVIDER.get()
        && EXPORTING.lock().unwrap().is_some()
        && let Err(e) = p.shutdown()
    {
        eprintln!("telemetry: flushing traces failed: {e}");
    }
}

fn var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The OTLP span exporter the standard variables ask for, with its endpoint;
/// None when no endpoint is configured or export is turned off.
fn otlp_exporter() -> anyhow::Result<Option<(opentelemetry_otlp::SpanExporter, String)>> {
    use opentelemetry_otlp::{Protocol, WithExportConfig};
    if var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Ok(None);
    }
    match var("OTEL_TRACES_EXPORTER").as_deref() {
        None | Some("otlp") => {}
        Some("none") => return Ok(None),
        Some(other) => anyhow::bail!(
            "OTEL_TRACES_EXPORTER={other}: this build exports traces with otlp (or none)"
        ),
    }
    let endpoint = match (
        var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
        var("OTEL_EXPORTER_OTLP_ENDPOINT"),
    ) {
        (Some(traces), _) => traces,
        (None, Some(base)) => format!("{}/v1/traces", base.trim_end_matches('/')),
        (None, None) => return Ok(None),
    };
    let protocol =
        var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL"));
    match protocol.as_deref() {
        None | Some("http/protobuf") => {}
        Some(other) => anyhow::bail!(
            "OTEL_EXPORTER_OTLP_PROTOCOL={other}: this build speaks http/protobuf (OTLP over HTTP, port 4318)"
        ),
    }
    // The endpoint, timeout and headers come from the same variables (read by the exporter).
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .build()
        .map_err(|e| anyhow::anyhow!("OTLP exporter for {endpoint}: {e}"))?;
    Ok(Some((exporter, endpoint)))
}

/// A span's fields, kept for the log lines inside it.
#[derive(Default)]
struct Fields(Vec<(&'static str, Value)>);

impl Fields {
    fn set(&mut self, name: &'static str, value: Value) {
        // `otel.*` fields steer the OpenTelemetry span (name, kind); not log fields.
        if name.starts_with("otel.") {
            return;
        }
        match self.0.iter_mut().find(|(k, _)| *k == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name, value)),
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, f: &Field, v: &str) {
        self.set(f.name(), Value::from(v));
    }
    fn record_i64(&mut self, f: &Field, v: i64) {
        self.set(f.name(), Value::from(v));
    }
    fn record_u64(&mut self, f: &Field, v: u64) {
        self.set(f.name(), Value::from(v));
    }
    fn record_f64(&mut self, f: &Field, v: f64) {
        self.set(f.name(), Value::from(v));
    }
    fn record_bool(&mut self, f: &Field, v: bool) {
        self.set(f.name(), Value::from(v));
    }
    fn record_error(&mut self, f: &Field, v: &(dyn std::error::Error + 'static)) {
        self.set(f.name(), Value::from(format!("{v:#}")));
    }
    fn record_debug(&mut self, f: &Field, v: &dyn std::fmt::Debug) {
        self.set(f.name(), Value::from(format!("{v:?}")));
    }
}

/// The log layer: JSON lines, or for a person at a terminal one short line each.
struct JsonLines<W> {
    service: &'static str,
    writer: W,
    human: bool,
}

impl<W> JsonLines<W> {
    fn new(service: &'static str, writer: W) -> Self {
        JsonLines {
            service,
            writer,
            human: false,
        }
    }

    /// Short coloured lines instead of JSON.
    fn for_people(mut self, human: bool) -> Self {
        self.human = human;
        self
    }

    /// In the all-in-one process, the service a line comes from is its crate.
    fn service_of(&self, target: &str) -> &'static str {
        if self.service != "alexandrite" {
            return self.service;
        }
        match target.split("::").next().unwrap_or_default() {
            "gateway" => "gateway",
            "crm" => "crm",
            "mes" => "mes",
            "pricing" => "pricing",
            _ => "alexandrite",
        }
    }
}

const FIRST: [&str; 4] = ["message", "trace_id", "span_id", "order_id"];

impl<S, W> Layer<S> for JsonLines<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: Context<'_, S>,
    ) {
        if let Some(span) = ctx.span(id) {
            let mut ext = span.extensions_mut();
            match ext.get_mut::<Fields>() {
                Some(f) => values.record(f),
                None => {
                    let mut f = Fields::default();
                    values.record(&mut f);
                    ext.insert(f);
                }
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut fields = Fields::default();
        let mut span_name = None;
        let mut ids = None;
        if let Some(scope) = ctx.event_scope(event) {
            let spans: Vec<_> = scope.collect();
            span_name = spans.first().map(|s| s.name());
            // Outer spans first, so the innermost value of a field wins.
            for span in spans.iter().rev() {
                if let Some(f) = span.extensions().get::<Fields>() {
                    for (k, v) in &f.0 {
                        fields.set(*k, v.clone());
                    }
                }
            }
            ids = spans.iter().find_map(|s| {
                let ext = s.extensions();
                let data = ext.get::<tracing_opentelemetry::OtelData>()?;
                Some((data.trace_id()?, data.span_id()?))
            });
        }
        event.record(&mut fields);
        if let Some((trace, span)) = ids
            && trace != opentelemetry::TraceId::INVALID
        {
            fields.set("trace_id", Value::from(trace.to_string()));
            fields.set("span_id", Value::from(span.to_string()));
        }

        if self.human {
            let line = human_line(meta.level(), self.service_of(meta.target()), &fields.0);
            let _ = self.writer.make_writer().write_all(line.as_bytes());
            return;
        }
        let mut line = String::with_capacity(256);
        let mut put = |k: &str, v: &Value| {
            line.push(if line.is_empty() { '{' } else { ',' });
            line.push_str(&serde_json::to_string(k).unwrap_or_default());
            line.push(':');
            line.push_str(&serde_json::to_string(v).unwrap_or_default());
        };
        put("time", &Value::from(domain::rfc3339(domain::now())));
        put("level", &Value::from(meta.level().as_str()));
        put("service", &Value::from(self.service_of(meta.target())));
        for key in FIRST {
            if let Some((_, v)) = fields.0.iter().find(|(k, _)| *k == key) {
                put(key, v);
            }
        }
        put("target", &Value::from(meta.target()));
        if let Some(name) = span_name {
            put("span", &Value::from(name));
        }
        for (k, v) in &fields.0 {
            if !FIRST.contains(k) && !matches!(*k, "time" | "level" | "service" | "target" | "span")
            {
                put(k, v);
            }
        }
        line.push_str("}\n");
        let _ = self.writer.make_writer().write_all(line.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Collects what the layer writes.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Buffer {
            self.clone()
        }
    }

    #[test]
    fn a_log_line_carries_time_level_service_message_trace_span_and_order() {
        let buf = Buffer::default();
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("t")))
            .with(JsonLines::new("mes", buf.clone()));
        let (trace_id, span_id) = tracing::subscriber::with_default(subscriber, || {
            let outer = tracing::info_span!(
                "mes.consume",
                order_id = "0199-order",
                kind = "pricing.completed",
                otel.kind = "consumer"
            );
            let _o = outer.enter();
            let inner = tracing::info_span!("step", attempt = 2);
            let _i = inner.enter();
            tracing::warn!(weight_g = 2.5, "model priced");
            let tp = adapters::telemetry::traceparent().unwrap();
            (tp[3..35].to_string(), tp[36..52].to_string())
        });
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(out.lines().count(), 1, "{out}");
        let line: Value = serde_json::from_str(out.trim()).unwrap();
        assert!(out.starts_with("{\"time\":"), "time first: {out}");
        let time = line["time"].as_str().unwrap();
        assert!(time.len() == 24 && time.ends_with('Z'), "{time}");
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["service"], "mes");
        assert_eq!(line["message"], "model priced");
        assert_eq!(line["trace_id"], trace_id.as_str());
        assert_eq!(line["span_id"], span_id.as_str(), "the innermost span");
        assert_eq!(line["order_id"], "0199-order");
        assert_eq!(line["kind"], "pricing.completed");
        assert_eq!(line["attempt"], 2);
        assert_eq!(line["weight_g"], 2.5);
        assert_eq!(line["span"], "step");
        assert!(line.get("otel.kind").is_none());
    }

    #[test]
    fn outside_any_span_there_is_no_trace_and_all_in_one_names_the_service_by_crate() {
        let buf = Buffer::default();
        let subscriber =
            tracing_subscriber::registry().with(JsonLines::new("alexandrite", buf.clone()));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "crm::consumer", "hello");
            tracing::info!(target: "adapters::bus", "there");
        });
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["service"], "crm");
        assert_eq!(lines[1]["service"], "alexandrite");
        assert!(lines[0].get("trace_id").is_none());
    }
}
