//! Trust at the edges, over HTTP on both profiles: a ring whose triangles are
//! wound inconsistently is priced as the clean ring; a surface that cannot be
//! oriented, and a model over the vertex budget, end REJECTED with a reason
//! a person can act on, in English and Russian.

use crate::helpers::{model, spawn_app, spawn_with};
use reqwest::StatusCode;

/// xorshift64, seeded: the same triangles turned on every run.
fn turn_some(stl: &mut [u8], seed: u64) -> u64 {
    let mut x = seed | 1;
    let n = u32::from_le_bytes(stl[80..84].try_into().unwrap()) as usize;
    let mut turned = 0;
    for i in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if x.is_multiple_of(3) {
            // Swap the record's second and third corners.
            let r = 84 + 50 * i;
            let (b, c) = stl[r + 24..r + 48].split_at_mut(12);
            b.swap_with_slice(c);
            turned += 1;
        }
    }
    turned
}

/// A binary STL of a closed surface without an inside (a Klein bottle, as
/// a grid glued with a half twist): every edge shared by two triangles.
fn klein_bottle_stl() -> Vec<u8> {
    let (m, n) = (8u32, 12u32);
    let pos = |i: u32, j: u32| -> [f32; 3] {
        let (i, j) = if j == n {
            (m - 1 - i % m, 0)
        } else {
            (i % m, j)
        };
        let u = 2.0 * std::f64::consts::PI * i as f64 / m as f64;
        let v = 2.0 * std::f64::consts::PI * j as f64 / n as f64;
        let r = 10.0 + 3.0 * u.cos();
        [
            (r * v.cos()) as f32,
            (r * v.sin()) as f32,
            (3.0 * u.sin() + 0.01 * j as f64) as f32,
        ]
    };
    let mut tris = Vec::new();
    for i in 0..m {
        for j in 0..n {
            let (a, b, c, d) = (pos(i, j), pos(i + 1, j), pos(i + 1, j + 1), pos(i, j + 1));
            tris.push([a, b, c]);
            tris.push([a, c, d]);
        }
    }
    let mut out = vec![b' '; 80];
    out.extend((tris.len() as u32).to_le_bytes());
    for t in tris {
        out.extend([0u8; 12]);
        for p in t {
            for c in p {
                out.extend(c.to_le_bytes());
            }
        }
        out.extend([0u8; 2]);
    }
    out
}

#[tokio::test]
async fn a_ring_with_scrambled_winding_weighs_what_the_clean_ring_weighs() {
    let app = spawn_app().await;
    let key = app.b2b_key.clone();
    let clean = model("ring_showcase_ring.bin.stl");
    let mut scrambled = clean.clone();
    let turned = turn_some(&mut scrambled, 0x5EED);
    assert!(turned > 3000);

    let mut ids = Vec::new();
    for (name, bytes) in [("clean.stl", clean), ("scrambled.stl", scrambled)] {
        let r = app.upload(&key, name, bytes, "AU585Y", None).await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        let body: serde_json::Value = r.json().await.unwrap();
        ids.push(body["order_id"].as_str().unwrap().to_string());
    }
    let a = app
        .wait_status(&key, &ids[0], "AWAITING_CONFIRMATION")
        .await;
    let b = app
        .wait_status(&key, &ids[1], "AWAITING_CONFIRMATION")
        .await;
    let (ga, gb) = (&a["geometry"], &b["geometry"]);
    assert_eq!(ga["flipped_triangles"], 0);
    assert_eq!(gb["flipped_triangles"], turned);
    assert_eq!(ga["weight_g"], gb["weight_g"], "{ga}\n{gb}");
    assert!((gb["weight_g"].as_f64().unwrap() - 1182.3 * 13.1 / 1000.0).abs() < 0.01);
    let (va, vb) = (
        ga["volume_mm3"].as_f64().unwrap(),
        gb["volume_mm3"].as_f64().unwrap(),
    );
    assert!((va - vb).abs() <= 1e-9 * va, "{va} vs {vb}");
    assert_eq!(a["price"]["total_minor"], b["price"]["total_minor"]);
    let warnings = gb["warnings"].to_string();
    assert!(
        warnings.contains(&format!("the winding of {turned} triangles")),
        "{warnings}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_surface_that_cannot_be_oriented_is_rejected_with_the_reason() {
    let app = spawn_app().await;
    let key = app.b2b_key.clone();
    let r = app
        .upload(&key, "klein.stl", klein_bottle_stl(), "AU585Y", None)
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let id = r.json::<serde_json::Value>().await.unwrap()["order_id"]
        .as_str()
        .unwrap()
        .to_string();
    let rejected = app.wait_status(&key, &id, "REJECTED").await;
    assert_eq!(
        rejected["rejection"]["code"], "unreliable_volume",
        "{rejected}"
    );
    let reason = rejected["rejection"]["reason"].as_str().unwrap();
    assert!(reason.contains("cannot be oriented"), "{reason}");
    assert!(reason.contains("Möbius strip"), "{reason}");
    assert!(reason.contains("невозможно ориентировать"), "{reason}");
    // Its edges are all paired: only the orientation refuses it.
    assert_eq!(rejected["geometry"]["watertight"], true, "{rejected}");
    assert_eq!(rejected["price"], serde_json::Value::Null);
    app.stop().await;
}

#[tokio::test]
async fn a_vertex_flood_is_rejected_by_its_budget() {
    let app = spawn_with(|c| c.limits.max_triangles = 1000).await;
    let key = app.b2b_key.clone();
    let mut obj = b"v 0 0 0\n".repeat(5000);
    obj.extend_from_slice(b"f 1 2 3\n");
    let r = app.upload(&key, "flood.obj", obj, "AU585Y", None).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let id = r.json::<serde_json::Value>().await.unwrap()["order_id"]
        .as_str()
        .unwrap()
        .to_string();
    let rejected = app.wait_status(&key, &id, "REJECTED").await;
    assert_eq!(rejected["rejection"]["code"], "too_large", "{rejected}");
    let reason = rejected["rejection"]["reason"].as_str().unwrap();
    assert!(reason.contains("more than 4024 vertices"), "{reason}");
    assert!(reason.contains("больше 4024 вершин"), "{reason}");
    app.stop().await;
}
