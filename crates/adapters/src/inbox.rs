//! The inbox: a consumer records each event id in the same transaction as its
//! effect, so a redelivered event is recognised and has no second effect.

use sqlx::{Any, Transaction};

/// The inbox table, the same in every service that consumes.
pub const SQL: &str = "CREATE TABLE inbox (
    consumer TEXT NOT NULL,
    event_id TEXT NOT NULL,
    received_at_ms BIGINT NOT NULL,
    PRIMARY KEY (consumer, event_id)
);";

/// Records the event; returns false if this consumer has already handled it.
pub async fn first_time(
    tx: &mut Transaction<'static, Any>,
    consumer: &str,
    event_id: &domain::EventId,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "INSERT INTO inbox (consumer, event_id, received_at_ms) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(consumer)
    .bind(event_id.to_string())
    .bind(domain::to_ms(domain::now()))
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}
