//! Logs: JSON lines with time, level, target, message and the span fields
//! (order_id, request_id…). `RUST_LOG` filters.

use tracing_subscriber::EnvFilter;

/// Where log lines go: stdout for the server, stderr for commands whose stdout is their answer.
pub enum Sink {
    Stdout,
    Stderr,
    /// The test harness's captured output (shown when a test fails).
    Test,
}

pub fn init(sink: Sink) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let builder = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .flatten_event(true);
    let _ = match sink {
        Sink::Stdout => builder.with_writer(std::io::stdout).try_init(),
        Sink::Stderr => builder.with_writer(std::io::stderr).try_init(),
        Sink::Test => builder.with_test_writer().try_init(),
    };
}
