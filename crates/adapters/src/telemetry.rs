//! Trace context across process boundaries (W3C Trace Context): the
//! `traceparent` of the current span, written into HTTP requests, outbox rows
//! and message headers; and spans made children of a `traceparent` received
//! the same ways. Spans are `tracing` spans; the OpenTelemetry layer the binary
//! installs gives them trace and span ids.

use opentelemetry::Context;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The header (HTTP and message) that carries the trace context.
pub const TRACEPARENT: &str = "traceparent";

/// `00-<trace id>-<span id>-<flags>` of a valid span context.
pub fn format(sc: &SpanContext) -> Option<String> {
    sc.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().to_u8()
        )
    })
}

fn hex_of_len(s: &str, n: usize) -> bool {
    s.len() == n
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Parses a `traceparent` as the W3C recommendation says: version 00 has
/// exactly four fields; a later version is read by its first four; all-zero
/// ids and version ff are invalid.
pub fn parse(traceparent: &str) -> Option<SpanContext> {
    let parts: Vec<&str> = traceparent.trim().split('-').collect();
    let [version, trace, span, flags, ..] = parts.as_slice() else {
        return None;
    };
    if !hex_of_len(version, 2) || *version == "ff" || (*version == "00" && parts.len() != 4) {
        return None;
    }
    if !hex_of_len(trace, 32) || !hex_of_len(span, 16) || !hex_of_len(flags, 2) {
        return None;
    }
    let trace_id = TraceId::from_hex(trace).ok()?;
    let span_id = SpanId::from_hex(span).ok()?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    let sc = SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::new(flags) & TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    sc.is_valid().then_some(sc)
}

/// The `traceparent` of a span (None without a tracing layer, or for a disabled span).
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    format(span.context().span().span_context())
}

/// The `traceparent` of the current span: what an outgoing request or event carries.
pub fn traceparent() -> Option<String> {
    traceparent_of(&tracing::Span::current())
}

/// The trace id of the current span, 32 hex digits.
pub fn trace_id() -> Option<String> {
    let cx = tracing::Span::current().context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| sc.trace_id().to_string())
}

/// Makes `span` a child of the span a `traceparent` names. Must be called
/// before the span is first entered; false if the value is missing or invalid
/// (the span then starts a trace of its own).
pub fn set_parent(span: &tracing::Span, traceparent: Option<&str>) -> bool {
    let Some(sc) = traceparent.and_then(parse) else {
        return false;
    };
    span.set_parent(Context::new().with_remote_span_context(sc))
        .is_ok()
}

/// Makes `span` a child of the trace context in request headers.
pub fn extract(span: &tracing::Span, headers: &http::HeaderMap) -> bool {
    let tp = headers.get(TRACEPARENT).and_then(|v| v.to_str().ok());
    set_parent(span, tp)
}

/// Writes the current span's context into outgoing request headers (replacing
/// whatever was there: the callee's parent is this process's span).
pub fn inject(headers: &mut http::HeaderMap) {
    match traceparent().and_then(|tp| http::HeaderValue::from_str(&tp).ok()) {
        Some(v) => {
            headers.insert(TRACEPARENT, v);
        }
        None => {
            headers.remove(TRACEPARENT);
        }
    }
    headers.remove("tracestate");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_round_trips_and_bad_ones_are_refused() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let sc = parse(tp).unwrap();
        assert_eq!(
            sc.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(sc.span_id().to_string(), "00f067aa0ba902b7");
        assert!(sc.is_sampled() && sc.is_remote());
        assert_eq!(format(&sc).as_deref(), Some(tp));
        // A later version may add fields; version 00 may not.
        assert!(parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x").is_some());
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        ] {
            assert!(parse(bad).is_none(), "{bad:?}");
        }
        let unsampled = parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap();
        assert!(!unsampled.is_sampled());
    }
}
