//! The command line: analyze, users, keys.

use crate::helpers::{model, spawn_app};
use serde_json::Value;
use std::process::Command;

fn alexandrite(args: &[&str], data_dir: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_alexandrite"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .unwrap()
}

/// The command line against a running test app's stores (either profile).
fn with_env(
    app: &crate::helpers::TestApp,
    args: &[&str],
    data_dir: &std::path::Path,
) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_alexandrite"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env(
            "ALEXANDRITE_CRM__DATABASE_URL",
            app.config.crm_database_url(),
        )
        .env(
            "ALEXANDRITE_MES__DATABASE_URL",
            app.config.mes_database_url(),
        )
        .env("ALEXANDRITE_BUS__URL", app.config.bus_url())
        .output()
        .unwrap()
}

fn models(name: &str) -> String {
    format!(
        "{}/../../../shared/models/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn analyze_prints_one_json_object_per_file_and_fails_on_an_unreadable_one() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("notes.txt");
    std::fs::write(&junk, "not a model\n").unwrap();
    let cube = models("generated/cube_10mm_12tri.ascii.stl");
    let ring = models("ring_showcase_ring.bin.stl");
    let out = alexandrite(
        &[
            "analyze",
            "--json",
            "--material",
            "AG925",
            &cube,
            junk.to_str().unwrap(),
            &ring,
        ],
        dir.path(),
    );
    assert!(
        !out.status.success(),
        "an unreadable file makes the exit status non-zero"
    );
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    let c = &lines[0];
    assert_eq!(c["format"], "ASCII STL");
    assert_eq!(
        (
            c["triangles"].as_u64(),
            c["vertices"].as_u64(),
            c["shells"].as_u64()
        ),
        (Some(12), Some(8), Some(1))
    );
    assert_eq!(
        (c["volume_mm3"].as_f64(), c["area_mm2"].as_f64()),
        (Some(1000.0), Some(600.0))
    );
    assert_eq!(
        c["bbox_mm"],
        serde_json::json!({"x": 10.0, "y": 10.0, "z": 10.0})
    );
    assert_eq!(
        (
            c["watertight"].as_bool(),
            c["boundary_edges"].as_u64(),
            c["nonmanifold_edges"].as_u64()
        ),
        (Some(true), Some(0), Some(0))
    );
    // 1000 mm³ of 925 silver (10.4 g/cm³) = 10.4 g at 120 ₽/g × 1.08 = 1 347,84 ₽ of metal.
    assert_eq!(c["weight_g"], 10.4);
    assert_eq!(c["price"]["breakdown"]["lines"][0]["amount_minor"], 134_784);
    assert_eq!(c["price"]["currency"], "RUB");
    assert!(
        lines[1]["error"]
            .as_str()
            .unwrap()
            .starts_with("file is not an STL/OBJ/PLY/3MF model"),
        "{}",
        lines[1]
    );
    assert_eq!(lines[1]["file"], junk.to_str().unwrap());
    assert_eq!(lines[2]["triangles"], 11422);
    assert_eq!(
        (c["metal_rule"].as_str(), c["stones"].as_u64()),
        (Some("single_shell"), Some(0))
    );

    // The ring with set stones: 7 stones found, the band alone is metal, and
    // the line says by which rule (see crates/geometry/tests/it/real.rs).
    let x1 = models("jewelry_JP004A-X1_ring_with_stones.obj");
    let out = alexandrite(&["analyze", "--json", &x1], dir.path());
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["stones"].as_u64(), v["metal_rule"].as_str()),
        (Some(7), Some("stones_excluded"))
    );
    assert!((v["metal_volume_mm3"].as_f64().unwrap() - 2076.4003).abs() < 1e-3);
    assert!(v["metal_rule_text"].as_str().unwrap().contains("stones"));

    let out = alexandrite(&["analyze", "--material", "GOLDISH", &cube], dir.path());
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("unknown material 'GOLDISH'; one of: AG925, AU585Y")
    );
}

#[test]
fn users_and_keys_are_created_from_the_command_line_and_the_key_alone_is_printed() {
    let dir = tempfile::tempdir().unwrap();
    let out = alexandrite(
        &[
            "users",
            "create",
            "--role",
            "customer",
            "--email",
            "dev@acme.test",
            "--password",
            "long-enough",
            "--org",
            "acme",
        ],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = alexandrite(
        &[
            "users",
            "create",
            "--role",
            "customer",
            "--email",
            "dev@acme.test",
            "--password",
            "long-enough",
        ],
        dir.path(),
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("a user with email dev@acme.test already exists")
    );
    let out = alexandrite(
        &[
            "users",
            "create",
            "--role",
            "operator",
            "--email",
            "x@y.test",
            "--password",
            "short",
        ],
        dir.path(),
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 8 characters"));
    let out = alexandrite(&["keys", "create", "--email", "dev@acme.test"], dir.path());
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1);
    assert!(
        stdout.trim().starts_with("alx_") && stdout.trim().len() == 52,
        "{stdout:?}"
    );
    let out = alexandrite(
        &["keys", "create", "--email", "nobody@acme.test"],
        dir.path(),
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("no user with email nobody@acme.test"));
}

#[tokio::test]
async fn the_same_bytes_are_measured_once_and_the_measurement_is_reused() {
    let app = spawn_app().await;
    let key = app.b2b_key.clone();
    let cube = model("generated/cube_10mm_12tri.bin.stl");
    let first = app
        .upload_model(&key, "generated/cube_10mm_12tri.bin.stl", "AG925")
        .await;
    let priced = app.wait_status(&key, &first, "AWAITING_CONFIRMATION").await;
    assert_eq!(priced["geometry"]["volume_mm3"], 1000.0);

    // The measurement sits next to the models under the file's content hash.
    use sha2::Digest;
    let sha = hex::encode(sha2::Sha256::digest(&cube));
    let store = app.store();
    let cached = pricing::measurement_key(&sha);
    let bytes = store
        .get(&cached)
        .await
        .expect("measurement cached")
        .bytes()
        .await
        .unwrap();
    let mut m: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(m["volume_mm3"], 1000.0);
    assert_eq!(m["metal_volume_mm3"], 1000.0);
    assert_eq!(m["metal_rule"], "single_shell");
    // Tamper with it: if the second order shows this volume, it was not recomputed.
    m["volume_mm3"] = serde_json::json!(2000.0);
    m["metal_volume_mm3"] = serde_json::json!(2000.0);
    store
        .put(&cached, serde_json::to_vec(&m).unwrap().into())
        .await
        .unwrap();

    let second = app
        .upload_model(&key, "generated/cube_10mm_12tri.bin.stl", "AU585Y")
        .await;
    let priced = app
        .wait_status(&key, &second, "AWAITING_CONFIRMATION")
        .await;
    assert_eq!(priced["geometry"]["volume_mm3"], 2000.0);
    assert_eq!(
        priced["geometry"]["weight_g"], 26.2,
        "priced for its own material from the cached geometry"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_poison_message_is_listed_as_a_dead_letter_and_can_be_replayed() {
    let app = spawn_app().await;
    // An order.priced whose payload no version of the CRM understands.
    let bus = alexandrite::app::admin_bus(&app.config).await.unwrap();
    let mut poison = domain::events::Envelope::new(
        "chaos",
        &domain::events::OrderConfirmed {
            order_id: domain::OrderId::new(),
            actor: domain::events::Actor::system("t"),
        },
    );
    poison.kind = "order.priced".into();
    adapters::Bus::publish(&*bus, &poison).await.unwrap();

    let dir = app.data_dir.path().to_path_buf();
    let mut letters: Vec<Value> = vec![];
    for _ in 0..200 {
        let out = with_env(&app, &["dlq", "list", "--json"], &dir);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        letters = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if !letters.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(letters.len(), 1, "the poison is dead-lettered at once");
    let d = &letters[0];
    assert_eq!(
        (d["queue"].as_str(), d["kind"].as_str()),
        (Some("crm.events"), Some("order.priced"))
    );
    assert_eq!(d["event_id"], poison.event_id.to_string());
    // The embedded bus keeps the consumer's reason; a broker only knows it was rejected.
    let reason = d["reason"].as_str().unwrap();
    assert!(
        reason.contains("is not understood") || reason.contains("rejected"),
        "{d}"
    );

    let out = with_env(&app, &["dlq", "replay", &d["id"].to_string()], &dir);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "replayed 1 dead letter(s)"
    );
    let out = with_env(&app, &["dlq", "replay", "999999"], &dir);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no dead letter with id 999999"));
    app.stop().await;
}

#[tokio::test]
async fn reconciliation_finds_an_order_the_crm_and_mes_disagree_about() {
    let app = spawn_app().await;
    let key = app.b2b_key.clone();
    let a = app
        .upload_model(&key, "generated/cube_10mm_12tri.bin.stl", "AG925")
        .await;
    let b = app
        .upload_model(&key, "generated/cube_10mm_12tri.obj", "AG925")
        .await;
    app.wait_status(&key, &a, "AWAITING_CONFIRMATION").await;
    app.wait_status(&key, &b, "AWAITING_CONFIRMATION").await;
    let dir = app.data_dir.path().to_path_buf();
    let reconcile = |dir: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_alexandrite"))
            .args(["reconcile", "--json", "--data-dir"])
            .arg(dir)
            .env("ALEXANDRITE_RECONCILE__GRACE_SECONDS", "0")
            .env(
                "ALEXANDRITE_CRM__DATABASE_URL",
                app.config.crm_database_url(),
            )
            .env(
                "ALEXANDRITE_MES__DATABASE_URL",
                app.config.mes_database_url(),
            )
            .output()
            .unwrap()
    };
    let out = reconcile(&dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (
            report["checked"].as_u64(),
            report["differences"].as_array().unwrap().len()
        ),
        (Some(2), 0)
    );

    // Lose an event by hand: MES moves on, the CRM never hears of it.
    let mes = adapters::Db::connect(&app.config.mes_database_url(), mes::migrations())
        .await
        .unwrap();
    sqlx::query("UPDATE orders SET status = 'CANCELLED' WHERE id = $1")
        .bind(&b)
        .execute(mes.pool())
        .await
        .unwrap();
    let out = reconcile(&dir);
    assert!(
        !out.status.success(),
        "a difference makes the exit status non-zero"
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["differences"],
        serde_json::json!([{ "order_id": b, "crm": "AWAITING_CONFIRMATION", "mes": "CANCELLED" }])
    );
    app.stop().await;
}
