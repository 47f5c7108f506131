//! The CRM's consumer applies each event exactly once, whatever the delivery.

use adapters::Db;
use adapters::bus::{DeliveryError, Handler};
use crm::consumer::CrmConsumer;
use domain::events::{
    Actor, BBox, Envelope, GeometrySummary, OrderPriced, OrderStatusChanged, Quote,
};
use domain::price::{self, MaterialSnapshot, PriceInput, PricingRules};
use domain::{OrderId, OrderStatus};
use sqlx::Row;

mod common;
use common::{db, received};

fn priced(id: OrderId) -> Envelope {
    let material = MaterialSnapshot {
        code: "AG925".into(),
        version: 1,
        name_en: "925 silver".into(),
        name_ru: "Серебро 925".into(),
        density_g_cm3: 10.4,
        price_per_gram_minor: 12_000,
        currency: domain::money::Currency::RUB,
    };
    let input = PriceInput {
        volume_mm3: 1000.0,
        area_mm2: 600.0,
        shells: 1,
        triangles: 12,
        stones: 0,
        metal_rule: price::MetalRule::SingleShell,
    };
    let (total, breakdown) = price::price(&input, &material, &PricingRules::default()).unwrap();
    let geometry = GeometrySummary {
        format: "binary STL".into(),
        triangles: 12,
        vertices: 8,
        volume_mm3: 1000.0,
        area_mm2: 600.0,
        bbox_mm: BBox {
            x: 10.0,
            y: 10.0,
            z: 10.0,
        },
        shells: 1,
        watertight: true,
        boundary_edges: 0,
        nonmanifold_edges: 0,
        weight_g: 10.4,
        metal_volume_mm3: Some(1000.0),
        stones: 0,
        metal_rule: price::MetalRule::SingleShell,
        flipped_triangles: 0,
        warnings: vec![],
    };
    Envelope::new(
        "mes",
        &OrderPriced {
            order_id: id,
            geometry,
            quote: Quote {
                total,
                breakdown,
                material,
            },
        },
    )
}

async fn count(db: &Db, sql: &str, id: OrderId) -> i64 {
    sqlx::query(sql)
        .bind(id.to_string())
        .fetch_one(db.pool())
        .await
        .unwrap()
        .try_get("n")
        .unwrap()
}

#[tokio::test]
async fn the_same_event_delivered_twice_has_one_effect() {
    let dir = tempfile::tempdir().unwrap();
    let db = db(&dir).await;
    let consumer = CrmConsumer { db: db.clone() };
    let id = OrderId::new();
    let (r, p) = (received(id), priced(id));
    for env in [&r, &r, &p, &p, &r] {
        consumer.handle(env.clone()).await.unwrap();
    }
    assert_eq!(
        count(&db, "SELECT COUNT(*) AS n FROM orders WHERE id = $1", id).await,
        1
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) AS n FROM order_history WHERE order_id = $1",
            id
        )
        .await,
        2
    );
    let status: String = sqlx::query("SELECT status FROM orders WHERE id = $1")
        .bind(id.to_string())
        .fetch_one(db.pool())
        .await
        .unwrap()
        .try_get("status")
        .unwrap();
    assert_eq!(status, "AWAITING_CONFIRMATION");
}

#[tokio::test]
async fn an_event_ahead_of_its_predecessor_is_retried_not_lost() {
    let dir = tempfile::tempdir().unwrap();
    let db = db(&dir).await;
    let consumer = CrmConsumer { db: db.clone() };
    let id = OrderId::new();
    // Priced before the CRM heard of the order: retry later, and nothing recorded meanwhile
    // (the inbox entry rolls back with the failed transaction).
    let p = priced(id);
    assert!(matches!(
        consumer.handle(p.clone()).await,
        Err(DeliveryError::Retry(_))
    ));
    consumer.handle(received(id)).await.unwrap();
    consumer.handle(p).await.unwrap();
    // A status that skips a step waits for the missing one.
    let shipped = Envelope::new(
        "mes",
        &OrderStatusChanged {
            order_id: id,
            status: OrderStatus::Shipped,
            actor: Actor::system("t"),
            tracking_number: None,
            note: None,
        },
    );
    assert!(matches!(
        consumer.handle(shipped).await,
        Err(DeliveryError::Retry(_))
    ));
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) AS n FROM order_history WHERE order_id = $1",
            id
        )
        .await,
        2
    );
}

#[tokio::test]
async fn an_event_of_a_type_the_crm_does_not_handle_is_poison() {
    let dir = tempfile::tempdir().unwrap();
    let consumer = CrmConsumer { db: db(&dir).await };
    let mut env = received(OrderId::new());
    env.kind = "order.teleported".into();
    assert!(matches!(
        consumer.handle(env).await,
        Err(DeliveryError::Reject(_))
    ));
}

fn status_changed(id: OrderId, status: OrderStatus, note: Option<&str>) -> Envelope {
    Envelope::new(
        "mes",
        &OrderStatusChanged {
            order_id: id,
            status,
            actor: Actor {
                kind: "operator".into(),
                name: "Oleg".into(),
                user_id: None,
            },
            tracking_number: None,
            note: note.map(str::to_string),
        },
    )
}

async fn crm_status(db: &Db, id: OrderId) -> String {
    sqlx::query("SELECT status FROM orders WHERE id = $1")
        .bind(id.to_string())
        .fetch_one(db.pool())
        .await
        .unwrap()
        .try_get("status")
        .unwrap()
}

/// An operator releasing an order back to the queue takes the customer's view
/// back to CONFIRMED (with the reason in the timeline); taking it again moves it on.
#[tokio::test]
async fn a_release_back_to_the_queue_is_followed() {
    let dir = tempfile::tempdir().unwrap();
    let db = db(&dir).await;
    let consumer = CrmConsumer { db: db.clone() };
    let id = OrderId::new();
    consumer.handle(received(id)).await.unwrap();
    consumer.handle(priced(id)).await.unwrap();
    // The customer confirms in the CRM itself.
    sqlx::query("UPDATE orders SET status = 'CONFIRMED' WHERE id = $1")
        .bind(id.to_string())
        .execute(db.pool())
        .await
        .unwrap();
    consumer
        .handle(status_changed(id, OrderStatus::ManufacturingStarted, None))
        .await
        .unwrap();
    assert_eq!(crm_status(&db, id).await, "MANUFACTURING_STARTED");
    let release = status_changed(id, OrderStatus::Confirmed, Some("wrong alloy in stock"));
    consumer.handle(release.clone()).await.unwrap();
    assert_eq!(crm_status(&db, id).await, "CONFIRMED");
    // The same release delivered again changes nothing.
    consumer.handle(release).await.unwrap();
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) AS n FROM order_history WHERE order_id = $1 AND status = 'CONFIRMED' \
             AND note = 'wrong alloy in stock'",
            id
        )
        .await,
        1
    );
    consumer
        .handle(status_changed(id, OrderStatus::ManufacturingStarted, None))
        .await
        .unwrap();
    assert_eq!(crm_status(&db, id).await, "MANUFACTURING_STARTED");
    // A status that skips ahead is still refused until its predecessor arrives.
    assert!(matches!(
        consumer
            .handle(status_changed(id, OrderStatus::Shipped, None))
            .await,
        Err(DeliveryError::Retry(_))
    ));
}
