//! What the CRM's integration tests share: a fresh database and the first event of an order.

use adapters::Db;
use domain::OrderId;
use domain::events::{Actor, Envelope, ModelReceived};

pub async fn db(dir: &tempfile::TempDir) -> Db {
    Db::connect(
        &adapters::db::sqlite_url(&dir.path().join("crm.sqlite")),
        crm::migrations(),
    )
    .await
    .unwrap()
}

pub fn received(id: OrderId) -> Envelope {
    Envelope::new(
        "mes",
        &ModelReceived {
            order_id: id,
            tenant: "org:acme".into(),
            owner: Actor {
                kind: "customer".into(),
                name: "Acme".into(),
                user_id: None,
            },
            owner_email: "a@acme.test".into(),
            material: "AG925".into(),
            file_name: "ring.stl".into(),
            size_bytes: 684,
            channel: "api".into(),
        },
    )
}
