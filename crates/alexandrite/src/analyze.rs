//! `alexandrite analyze`: the pricing workers' measurement and price, for files
//! on disk.

use crate::config::Config;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The report of one file: the measurement, and with a material the weight and price.
pub fn report(
    path: &Path,
    bytes: &[u8],
    material: Option<&domain::price::MaterialSnapshot>,
    config: &Config,
) -> Value {
    let limits = geometry::Limits {
        max_bytes: config.limits.max_upload_bytes,
        max_triangles: config.limits.max_triangles,
    };
    let started = Instant::now();
    let measured = match pricing::measure(bytes, &limits) {
        Ok(m) => m,
        Err(u) => return json!({ "file": path.display().to_string(), "error": u.reason }),
    };
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let mut v = json!({
        "file": path.display().to_string(),
        "format": measured.format,
        "triangles": measured.triangles,
        "vertices": measured.vertices,
        "volume_mm3": measured.volume_mm3,
        "area_mm2": measured.area_mm2,
        "bbox_mm": measured.bbox_mm,
        "shells": measured.shells,
        "watertight": measured.watertight(),
        "boundary_edges": measured.boundary_edges,
        "nonmanifold_edges": measured.nonmanifold_edges,
        "metal_volume_mm3": measured.metal_volume(),
        "stones": measured.stones,
        "stone_volume_mm3": measured.stone_volume_mm3,
        "metal_rule": measured.metal_rule,
        "metal_rule_text": measured.metal_rule.text_en(),
        "flipped_triangles": measured.flipped_triangles,
        "warnings": measured.warnings,
        "analysis_ms": (ms * 1000.0).round() / 1000.0,
    });
    if let Some(m) = material {
        match measured.quote(m, &config.pricing.rules, &config.pricing.casting) {
            Ok((g, q)) => {
                v["weight_g"] = json!(g.weight_g);
                v["material"] = json!(m.code);
                v["price"] = serde_json::to_value(q.view()).expect("price serialises");
            }
            Err(u) => {
                v["weight_g"] = json!(u.geometry.map(|g| g.weight_g));
                v["material"] = json!(m.code);
                v["price"] = Value::Null;
                v["rejection"] = json!(u.reason);
            }
        }
    }
    v
}

fn human(v: &Value) -> String {
    if let Some(e) = v.get("error") {
        return format!(
            "{}\n  error: {}\n",
            v["file"].as_str().unwrap_or(""),
            e.as_str().unwrap_or("")
        );
    }
    let b = &v["bbox_mm"];
    let mut out = format!(
        "{}\n  format      {}\n  triangles   {}   vertices {}\n  volume      {:.3} mm³\n  area        {:.3} mm²\n  size        {:.2} × {:.2} × {:.2} mm\n  shells      {}\n  watertight  {} (open edges {}, non-manifold edges {})\n  analysed in {:.1} ms\n",
        v["file"].as_str().unwrap_or(""),
        v["format"].as_str().unwrap_or(""),
        v["triangles"],
        v["vertices"],
        v["volume_mm3"].as_f64().unwrap_or(0.0),
        v["area_mm2"].as_f64().unwrap_or(0.0),
        b["x"].as_f64().unwrap_or(0.0),
        b["y"].as_f64().unwrap_or(0.0),
        b["z"].as_f64().unwrap_or(0.0),
        v["shells"],
        if v["watertight"] == true { "yes" } else { "no" },
        v["boundary_edges"],
        v["nonmanifold_edges"],
        v["analysis_ms"].as_f64().unwrap_or(0.0),
    );
    out += &format!(
        "  metal       {:.3} mm³ ({}; {} stones, {:.3} mm³)\n",
        v["metal_volume_mm3"].as_f64().unwrap_or(0.0),
        v["metal_rule_text"].as_str().unwrap_or(""),
        v["stones"],
        v["stone_volume_mm3"].as_f64().unwrap_or(0.0),
    );
    for w in v["warnings"].as_array().into_iter().flatten() {
        out += &format!("  warning     {}\n", w.as_str().unwrap_or(""));
    }
    if v.get("material").is_some() {
        out += &format!(
            "  weight      {} g of {}\n",
            v["weight_g"],
            v["material"].as_str().unwrap_or("")
        );
        match v.get("rejection") {
            Some(r) => out += &format!("  cannot be made: {}\n", r.as_str().unwrap_or("")),
            None => {
                for l in v["price"]["breakdown"]["lines"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    let m = domain::Money::rub(l["amount_minor"].as_i64().unwrap_or(0));
                    out += &format!(
                        "  {:<22}{:>16}\n",
                        l["code"].as_str().unwrap_or(""),
                        m.display()
                    );
                }
                let total = domain::Money::rub(v["price"]["total_minor"].as_i64().unwrap_or(0));
                out += &format!("  {:<22}{:>16}\n", "total", total.display());
            }
        }
    }
    out
}

/// Analyses every file; an unreadable one is reported and makes the exit status non-zero.
pub async fn run(
    config: &Config,
    files: &[PathBuf],
    material: Option<&str>,
    json_out: bool,
) -> anyhow::Result<()> {
    let material = match material {
        None => None,
        Some(code) => {
            adapters::private::create_dir(&config.data_dir)?;
            let db = adapters::Db::connect(&config.mes_database_url(), mes::migrations()).await?;
            let found = mes::materials::find(&db, code).await?;
            let known: Vec<String> = mes::materials::list(&db)
                .await?
                .into_iter()
                .map(|m| m.code)
                .collect();
            db.close().await;
            Some(found.ok_or_else(|| {
                anyhow::anyhow!("unknown material '{code}'; one of: {}", known.join(", "))
            })?)
        }
    };
    let mut failed = 0;
    for path in files {
        let v = match std::fs::read(path) {
            Ok(bytes) => {
                let (p, m, c) = (path.clone(), material.clone(), config.clone());
                tokio::task::spawn_blocking(move || report(&p, &bytes, m.as_ref(), &c)).await?
            }
            Err(e) => {
                json!({ "file": path.display().to_string(), "error": format!("cannot read the file: {e}") })
            }
        };
        if v.get("error").is_some() {
            failed += 1;
        }
        if json_out {
            println!("{v}");
        } else {
            println!("{}", human(&v));
        }
    }
    anyhow::ensure!(
        failed == 0,
        "{failed} of {} files could not be analysed",
        files.len()
    );
    Ok(())
}
