//! The CRM's SLA clocks: an order is on time, then at risk, then overdue; an
//! overdue order is announced once per status, even across a restart.

use adapters::bus::Handler;
use adapters::metrics::Metrics;
use crm::consumer::CrmConsumer;
use crm::sla::Sla;
use domain::sla::{Lateness, SlaPolicy};
use domain::{OrderId, OrderStatus};

mod common;
use common::{db, received};

fn policy() -> SlaPolicy {
    SlaPolicy {
        pricing_seconds: Some(60),
        at_risk_permille: 750,
        ..SlaPolicy::default()
    }
}

#[tokio::test]
async fn an_order_is_on_time_then_at_risk_then_overdue_and_announced_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = db(&dir).await;
    let (old, young) = (OrderId::new(), OrderId::new());
    let consumer = CrmConsumer { db: db.clone() };
    consumer.handle(received(old)).await.unwrap();
    let t0 = domain::to_ms(domain::now());
    // The younger order enters PRICING 10 s "later": shift its clock.
    consumer.handle(received(young)).await.unwrap();
    sqlx::query("UPDATE orders SET updated_at_ms = updated_at_ms + 10000 WHERE id = $1")
        .bind(young.to_string())
        .execute(db.pool())
        .await
        .unwrap();

    let metrics = Metrics::new();
    let sla = Sla::new(db.clone(), policy(), metrics.clone());
    assert!(sla.late(t0).await.unwrap().is_empty(), "on time at first");
    assert_eq!(sla.announce(t0).await.unwrap(), 0);

    // 50 s: the old order is at risk (past 45 s of 60), the young one not yet.
    let late = sla.late(t0 + 50_000).await.unwrap();
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].row.order_id, old.to_string());
    assert_eq!(late[0].lateness, Lateness::AtRisk);
    assert_eq!(late[0].status, OrderStatus::Pricing);
    assert!(late[0].late_by_ms < 0);
    assert_eq!(
        sla.announce(t0 + 50_000).await.unwrap(),
        0,
        "at risk is not overdue"
    );

    // 65 s: the old one overdue (first), the young one at risk.
    let late = sla.late(t0 + 65_000).await.unwrap();
    let got: Vec<_> = late
        .iter()
        .map(|l| (l.row.order_id.clone(), l.lateness))
        .collect();
    assert_eq!(
        got,
        [
            (old.to_string(), Lateness::Overdue),
            (young.to_string(), Lateness::AtRisk)
        ]
    );
    assert_eq!(sla.announce(t0 + 65_000).await.unwrap(), 1);
    assert_eq!(sla.announce(t0 + 66_000).await.unwrap(), 0, "once");
    let late = sla.late(t0 + 66_000).await.unwrap();
    assert!(late[0].row.announced_at_ms.is_some());
    assert!(late[1].row.announced_at_ms.is_none());

    // A restart (a new process on the same database) does not repeat it; the
    // young order is announced when its turn comes.
    drop(sla);
    db.close().await;
    let db = self::db(&dir).await;
    let sla = Sla::new(db.clone(), policy(), metrics.clone());
    assert_eq!(sla.announce(t0 + 80_000).await.unwrap(), 1);
    assert_eq!(sla.announce(t0 + 90_000).await.unwrap(), 0);
    let text = metrics.encode();
    assert!(
        text.contains(r#"alexandrite_sla_overdue_announced_total{status="PRICING"} 2"#),
        "{text}"
    );
}
