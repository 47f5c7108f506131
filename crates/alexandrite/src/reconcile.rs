//! Reconciliation: the CRM's and MES's views of every open order, compared.
//! A difference means an event was lost or is stuck; it is logged (and
//! `alexandrite reconcile` exits non-zero) so a person can look.

use adapters::Db;
use domain::reconcile::{self, Difference, View, ViewFilter};
use serde::Serialize;
use std::collections::HashSet;
use std::time::Duration;
use web::IdentityKey;

/// Where one service's views come from.
#[derive(Clone)]
pub enum Source {
    /// The service's database, in this process.
    Local(Db),
    /// The service's `/internal/orders/views`, signed with the identity key.
    Remote { url: String, key: IdentityKey },
}

impl Source {
    async fn views(&self, filter: &ViewFilter) -> anyhow::Result<Vec<View>> {
        match self {
            Source::Local(db) => adapters::views::list(db, filter).await,
            Source::Remote { url, key } => {
                let body = serde_json::to_vec(filter)?;
                let resp = reqwest::Client::new()
                    .post(format!(
                        "{}/internal/orders/views",
                        url.trim_end_matches('/')
                    ))
                    .header(web::internal::SIGNATURE, key.sign_bytes(&body))
                    .header("content-type", "application/json")
                    .timeout(Duration::from_secs(30))
                    .body(body)
                    .send()
                    .await?;
                anyhow::ensure!(
                    resp.status().is_success(),
                    "{url} answered {}",
                    resp.status()
                );
                Ok(resp.json().await?)
            }
        }
    }
}

/// The result of one comparison.
#[derive(Debug, Serialize)]
pub struct Report {
    pub checked: usize,
    pub differences: Vec<Difference>,
}

/// Compares the open orders of both services (and each side's view of the
/// other's open orders), ignoring orders that changed in the last `grace`.
pub async fn run_once(crm: &Source, mes: &Source, grace: Duration) -> anyhow::Result<Report> {
    let (mut c, mut m) = (
        crm.views(&ViewFilter::Open).await?,
        mes.views(&ViewFilter::Open).await?,
    );
    let ids = |v: &[View]| v.iter().map(|x| x.order_id).collect::<HashSet<_>>();
    let (ci, mi) = (ids(&c), ids(&m));
    let only_crm: Vec<_> = ci.difference(&mi).copied().collect();
    let only_mes: Vec<_> = mi.difference(&ci).copied().collect();
    m.extend(mes.views(&ViewFilter::Ids(only_crm)).await?);
    c.extend(crm.views(&ViewFilter::Ids(only_mes)).await?);
    let checked = ci.union(&mi).count();
    let differences = reconcile::compare(
        &c,
        &m,
        domain::to_ms(domain::now()),
        grace.as_millis() as i64,
    );
    Ok(Report {
        checked,
        differences,
    })
}

/// Compares every `interval`, logging each difference.
pub async fn periodically(
    crm: Source,
    mes: Source,
    interval: Duration,
    grace: Duration,
    metrics: adapters::metrics::Metrics,
) {
    loop {
        tokio::time::sleep(interval).await;
        let result = run_once(&crm, &mes, grace).await;
        if let Ok(r) = &result {
            metrics.reconciled(r.differences.len());
        }
        match result {
            Ok(r) if r.differences.is_empty() => {
                tracing::info!(checked = r.checked, "reconciliation: CRM and MES agree")
            }
            Ok(r) => {
                for d in &r.differences {
                    tracing::warn!(order_id = %d.order_id, crm = ?d.crm, mes = ?d.mes,
                        "reconciliation: CRM and MES disagree about an order");
                }
            }
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "reconciliation could not run"),
        }
    }
}
