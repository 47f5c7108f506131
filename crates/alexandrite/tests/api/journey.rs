//! The order's journey: the back office shows every status with its time,
//! the time spent in it, who did it and the trace it happened in (linked to
//! the configured trace viewer); the customer sees statuses and times only.

use crate::helpers::spawn_with;
use domain::Role;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

const VIEWER: &str = "http://jaeger.test:16686/trace/{trace_id}";

/// One `#timeline` row as the page renders it.
#[derive(Debug)]
struct Row {
    status: String,
    at_ms: i64,
    spent_ms: i64,
    html: String,
}

impl Row {
    fn attr(&self, name: &str) -> Option<String> {
        attr(&self.html, name)
    }
}

fn attr(html: &str, name: &str) -> Option<String> {
    let start = html.find(&format!("{name}=\""))? + name.len() + 2;
    let len = html[start..].find('"')?;
    Some(html[start..start + len].to_string())
}

fn rows(html: &str) -> Vec<Row> {
    let table = &html[html.find("id=\"timeline\"").expect("a timeline")..];
    let body = &table[..table.find("</table>").unwrap()];
    body.split("<tr data-status=\"")
        .skip(1)
        .map(|r| {
            let html = format!("data-status=\"{r}");
            let at = attr(&html, "datetime").expect("a time");
            let at =
                time::OffsetDateTime::parse(&at, &time::format_description::well_known::Rfc3339)
                    .unwrap();
            Row {
                status: attr(&html, "data-status").unwrap(),
                at_ms: (at.unix_timestamp_nanos() / 1_000_000) as i64,
                spent_ms: attr(&html, "data-ms").unwrap().parse().unwrap(),
                html,
            }
        })
        .collect()
}

async fn page(client: &Client, url: String) -> String {
    let r = client.get(url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.text().await.unwrap()
}

fn is_trace_id(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

#[tokio::test]
async fn the_back_office_shows_the_journey_with_traces_and_the_customer_its_own_part() {
    let app = spawn_with(|c| c.telemetry.trace_url = Some(VIEWER.into())).await;
    let customer = app
        .key_for(
            Role::Customer,
            "irina@atelier.test",
            "Irina",
            Some("atelier"),
        )
        .await;
    let op = app.operator("Olga").await;
    let id = app
        .upload_model(&customer, "generated/cube_10mm_12tri.bin.stl", "AG925")
        .await;
    app.wait_status(&customer, &id, "AWAITING_CONFIRMATION")
        .await;
    let (status, _) = app
        .post(&customer, &format!("/api/v1/orders/{id}/confirm"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    // MES learns of the confirmation through the bus: take once it has.
    let mut taken = false;
    for _ in 0..400 {
        let (status, _) = app
            .post(&op, &format!("/mes/api/orders/{id}/take"), None)
            .await;
        if status == StatusCode::OK {
            taken = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(taken, "the order never became takeable");
    let (status, body) = app
        .post(
            &op,
            &format!("/mes/api/orders/{id}/status"),
            Some(json!({ "status": "MANUFACTURED" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.wait_status(&customer, &id, "MANUFACTURED").await;

    // The back office (Russian by default).
    let manager = app
        .login("maria@alexandrite.local", "manager-demo-2026")
        .await;
    let html = page(&manager, app.url(&format!("/crm/orders/{id}"))).await;
    let steps = rows(&html);
    let statuses: Vec<&str> = steps.iter().map(|r| r.status.as_str()).collect();
    assert_eq!(
        statuses,
        [
            "PRICING",
            "AWAITING_CONFIRMATION",
            "CONFIRMED",
            "MANUFACTURING_STARTED",
            "MANUFACTURED"
        ]
    );
    assert!(html.contains("Время в статусе") && html.contains("Трасса"));
    // Time spent: until the next step; the current status counts until now.
    for w in steps.windows(2) {
        assert_eq!(w[0].spent_ms, w[1].at_ms - w[0].at_ms, "{}", w[0].status);
    }
    let last = steps.last().unwrap();
    assert!(
        last.spent_ms >= 0 && last.html.contains("(пока идёт)"),
        "{}",
        last.html
    );
    assert!(!steps[0].html.contains("пока идёт"));
    // Who did each step.
    let actors: Vec<String> = steps
        .iter()
        .map(|r| {
            let a = &r.html[r.html.find("class=\"actor\">").unwrap() + 14..];
            a[..a.find('<').unwrap()].to_string()
        })
        .collect();
    assert_eq!(
        actors,
        ["Irina", "Автоматический расчёт", "Irina", "Olga", "Olga"]
    );
    // Every step names its trace, linked to the viewer.
    let traces: Vec<String> = steps
        .iter()
        .map(|r| r.attr("data-trace-id").unwrap())
        .collect();
    for (r, t) in steps.iter().zip(&traces) {
        assert!(is_trace_id(t), "{}: {t:?}", r.status);
        assert_eq!(
            r.attr("href"),
            Some(VIEWER.replace("{trace_id}", t)),
            "{}",
            r.status
        );
    }
    // The upload's trace followed the order through MES, the bus, the pricing
    // worker and back to the CRM; the customer's confirmation and the
    // operator's take are traces of their own.
    assert_eq!(
        traces[0], traces[1],
        "pricing happened in the upload's trace"
    );
    assert_ne!(traces[2], traces[0]);
    assert_ne!(traces[3], traces[2]);
    // MES recorded each change in the same trace as the CRM.
    let (_, mes) = app.get(&op, &format!("/mes/api/orders/{id}")).await;
    let mes_traces: Vec<(&str, &str)> = mes["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["status"].as_str().unwrap(),
                h["trace_id"].as_str().unwrap(),
            )
        })
        .collect();
    let crm_traces: Vec<(&str, &str)> = statuses
        .iter()
        .copied()
        .zip(traces.iter().map(String::as_str))
        .collect();
    assert_eq!(mes_traces, crm_traces);

    let en = page(&manager, app.url(&format!("/crm/orders/{id}?lang=en"))).await;
    assert!(en.contains("Time in status") && en.contains(">Trace<") && en.contains("(so far)"));

    // The customer's page: statuses, times and time spent, nothing internal.
    let shopper = app.login("irina@atelier.test", "password-123").await;
    let mine = page(&shopper, app.url(&format!("/account/orders/{id}"))).await;
    let my_steps = rows(&mine);
    assert_eq!(
        my_steps
            .iter()
            .map(|r| r.status.as_str())
            .collect::<Vec<_>>(),
        statuses
    );
    for (a, b) in my_steps.iter().zip(&steps) {
        assert_eq!(a.at_ms, b.at_ms);
    }
    for w in my_steps.windows(2) {
        assert_eq!(w[0].spent_ms, w[1].at_ms - w[0].at_ms);
    }
    assert!(mine.contains("Время в статусе"));
    for internal in [
        "Трасса",
        "data-trace-id",
        "jaeger.test",
        "Olga",
        "Автоматический расчёт",
    ] {
        assert!(
            !mine.contains(internal),
            "the customer's page shows {internal:?}"
        );
    }
    for t in &traces {
        assert!(
            !mine.contains(&t[..12]),
            "the customer's page shows a trace id"
        );
    }
    let mine_en = page(&shopper, app.url(&format!("/account/orders/{id}?lang=en"))).await;
    assert!(mine_en.contains("Time in status") && !mine_en.contains(">Trace<"));

    // The customers' API keeps trace ids to itself too.
    let (_, api) = app.order(&customer, &id).await;
    assert!(
        api["history"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h: &Value| h.get("trace_id").is_none())
    );
    app.stop().await;
}
