//! Live queue: every change to the queue (a confirmation, a take, a release, a
//! reassignment), from any MES process, pushed to every open console as
//! server-sent events. The console works without it (a plain page with a
//! refresh link); `queue.js` only makes it live.

use crate::MesState;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use std::convert::Infallible;
use tokio::sync::broadcast::error::RecvError;
use web::{ApiError, Staff};

const SCRIPT: &str = include_str!("../assets/queue.js");

/// `GET /mes/api/queue/events`: `text/event-stream` with one event per change,
/// named by its kind (`confirmed`, `taken`, `released`, `reassigned`) and
/// carrying `{"kind", "order_id", "operator", "at"}`; `ready` when connected,
/// `resync` when this listener fell behind (reload the first page).
pub async fn events(
    State(state): State<MesState>,
    Staff(_caller): Staff,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let rx = state.feed.watch();
    let changes = futures::stream::unfold(rx, |mut rx| async move {
        match rx.recv().await {
            Ok(c) => {
                let data = serde_json::to_string(&*c).unwrap_or_default();
                Some((Ok(Event::default().event(c.kind.clone()).data(data)), rx))
            }
            Err(RecvError::Lagged(_)) => {
                Some((Ok(Event::default().event("resync").data("{}")), rx))
            }
            Err(RecvError::Closed) => None,
        }
    });
    let ready = futures::stream::once(async { Ok(Event::default().event("ready").data("{}")) });
    Ok(Sse::new(ready.chain(changes)).keep_alive(KeepAlive::default()))
}

/// `GET /mes/static/queue.js`.
pub async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        SCRIPT,
    )
}
