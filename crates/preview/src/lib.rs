//! A shaded picture of a model from a fixed isometric angle, as PNG bytes.
//!
//! A depth-buffered orthographic rasteriser: every triangle is projected and
//! filled with a depth test, lit by a fixed light (two-sided, so open and
//! inside-out models look right). tiny-skia was the first choice, but it has no
//! depth test, and sorting millions of triangles for the painter's algorithm
//! and filling each as a path costs seconds; this loop costs milliseconds.

use geometry::Mesh;

/// The picture's side in pixels.
pub const SIZE: u32 = 384;
/// Supersampling factor per axis (anti-aliasing).
const SS: usize = 2;

/// The base colour of the metal (warm gold), RGB 0–1.
const METAL: [f32; 3] = [0.86, 0.70, 0.38];

fn normalize(v: [f64; 3]) -> [f64; 3] {
    let l = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
    if l > 0.0 {
        [v[0] / l, v[1] / l, v[2] / l]
    } else {
        [0.0, 0.0, 0.0]
    }
}

/// Isometric view: turned 45° about z, then tilted 35.26° about x (z up).
fn view(p: [f64; 3]) -> [f64; 3] {
    const C45: f64 = std::f64::consts::FRAC_1_SQRT_2;
    let (x, y) = ((p[0] - p[1]) * C45, (p[0] + p[1]) * C45);
    let (s, c) = (1.0f64 / 3.0f64.sqrt(), (2.0f64 / 3.0).sqrt()); // sin/cos of 35.26°
    // Screen x right, screen y up, depth toward the viewer.
    [x, p[2] * c - y * s, p[2] * s + y * c]
}

/// Renders the mesh as an RGBA PNG of `SIZE`² pixels with a transparent background.
pub fn render(mesh: &Mesh) -> Vec<u8> {
    let n = SIZE as usize * SS;
    let verts: Vec<[f64; 3]> = mesh.positions.iter().map(|&p| view(p)).collect();
    let (mut lo, mut hi) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
    for v in &verts {
        for k in 0..2 {
            lo[k] = lo[k].min(v[k]);
            hi[k] = hi[k].max(v[k]);
        }
    }
    let span = (hi[0] - lo[0]).max(hi[1] - lo[1]);
    let scale = if span > 0.0 && span.is_finite() {
        (n as f64 * 0.9) / span
    } else {
        1.0
    };
    let (cx, cy) = ((lo[0] + hi[0]) / 2.0, (lo[1] + hi[1]) / 2.0);
    let to_px = |v: [f64; 3]| {
        [
            (v[0] - cx) * scale + n as f64 / 2.0,
            n as f64 / 2.0 - (v[1] - cy) * scale,
            v[2],
        ]
    };
    let light = normalize([-0.4, 0.6, 0.7]);

    let mut depth = vec![f64::NEG_INFINITY; n * n];
    let mut shade = vec![0f32; n * n];
    for t in &mesh.triangles {
        let (a, b, c) = (
            verts[t[0] as usize],
            verts[t[1] as usize],
            verts[t[2] as usize],
        );
        let nrm = normalize({
            let (u, w) = (
                [b[0] - a[0], b[1] - a[1], b[2] - a[2]],
                [c[0] - a[0], c[1] - a[1], c[2] - a[2]],
            );
            [
                u[1] * w[2] - u[2] * w[1],
                u[2] * w[0] - u[0] * w[2],
                u[0] * w[1] - u[1] * w[0],
            ]
        });
        let lambert = (nrm[0] * light[0] + nrm[1] * light[1] + nrm[2] * light[2]).abs();
        let facing = nrm[2].abs();
        let s = (0.22 + 0.58 * lambert + 0.2 * facing.powi(8)) as f32;
        let (pa, pb, pc) = (to_px(a), to_px(b), to_px(c));
        let area = (pb[0] - pa[0]) * (pc[1] - pa[1]) - (pb[1] - pa[1]) * (pc[0] - pa[0]);
        if area.abs() < 1e-12 {
            continue;
        }
        let x0 = pa[0].min(pb[0]).min(pc[0]).floor().max(0.0) as usize;
        let x1 = (pa[0].max(pb[0]).max(pc[0]).ceil() as usize).min(n - 1);
        let y0 = pa[1].min(pb[1]).min(pc[1]).floor().max(0.0) as usize;
        let y1 = (pa[1].max(pb[1]).max(pc[1]).ceil() as usize).min(n - 1);
        for y in y0..=y1 {
            let py = y as f64 + 0.5;
            for x in x0..=x1 {
                let px = x as f64 + 0.5;
                let w0 = ((pb[0] - px) * (pc[1] - py) - (pb[1] - py) * (pc[0] - px)) / area;
                let w1 = ((pc[0] - px) * (pa[1] - py) - (pc[1] - py) * (pa[0] - px)) / area;
                let w2 = 1.0 - w0 - w1;
                if w0 < 0.0 || w1 < 0.0 || w2 < 0.0 {
                    continue;
                }
                let z = w0 * pa[2] + w1 * pb[2] + w2 * pc[2];
                let i = y * n + x;
                if z > depth[i] {
                    depth[i] = z;
                    shade[i] = s;
                }
            }
        }
    }

    // Downsample: average the SS×SS samples, premultiplied by coverage.
    let side = SIZE as usize;
    let mut rgba = vec![0u8; side * side * 4];
    for y in 0..side {
        for x in 0..side {
            let (mut cov, mut lum) = (0f32, 0f32);
            for dy in 0..SS {
                for dx in 0..SS {
                    let i = (y * SS + dy) * n + x * SS + dx;
                    if depth[i] > f64::NEG_INFINITY {
                        cov += 1.0;
                        lum += shade[i];
                    }
                }
            }
            if cov > 0.0 {
                let l = lum / cov;
                let o = (y * side + x) * 4;
                for k in 0..3 {
                    rgba[o + k] = ((METAL[k] * l).min(1.0) * 255.0).round() as u8;
                }
                rgba[o + 3] = (cov / (SS * SS) as f32 * 255.0).round() as u8;
            }
        }
    }
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, SIZE, SIZE);
        enc.set_color(png::ColorType::Rgba);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().expect("in-memory PNG header");
        w.write_image_data(&rgba).expect("in-memory PNG data");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cube() -> Mesh {
        let p = |x: f64, y: f64, z: f64| [x * 10.0, y * 10.0, z * 10.0];
        let positions = vec![
            p(0., 0., 0.),
            p(1., 0., 0.),
            p(1., 1., 0.),
            p(0., 1., 0.),
            p(0., 0., 1.),
            p(1., 0., 1.),
            p(1., 1., 1.),
            p(0., 1., 1.),
        ];
        let triangles = vec![
            [0, 2, 1],
            [0, 3, 2],
            [4, 5, 6],
            [4, 6, 7],
            [0, 1, 5],
            [0, 5, 4],
            [1, 2, 6],
            [1, 6, 5],
            [2, 3, 7],
            [2, 7, 6],
            [3, 0, 4],
            [3, 4, 7],
        ];
        Mesh {
            positions,
            triangles,
        }
    }

    fn decode(png_bytes: &[u8]) -> (png::OutputInfo, Vec<u8>) {
        let mut r = png::Decoder::new(png_bytes).read_info().unwrap();
        let mut buf = vec![0; r.output_buffer_size()];
        let info = r.next_frame(&mut buf).unwrap();
        (info, buf)
    }

    #[test]
    fn a_cube_fills_the_middle_and_leaves_the_corners_transparent() {
        let (info, px) = decode(&render(&cube()));
        assert_eq!((info.width, info.height), (SIZE, SIZE));
        let at =
            |x: u32, y: u32| &px[((y * SIZE + x) * 4) as usize..((y * SIZE + x) * 4 + 4) as usize];
        assert_eq!(at(0, 0)[3], 0, "background is transparent");
        assert_eq!(at(SIZE / 2, SIZE / 2)[3], 255, "the cube covers the centre");
        // Three visible faces, three different shades.
        let mut shades: Vec<u8> = [
            (SIZE / 2, SIZE / 4),
            (SIZE / 3, SIZE * 2 / 3),
            (SIZE * 2 / 3, SIZE * 2 / 3),
        ]
        .iter()
        .map(|&(x, y)| at(x, y)[0])
        .collect();
        shades.dedup();
        assert_eq!(shades.len(), 3, "{shades:?}");
    }

    #[test]
    fn an_empty_or_flat_mesh_renders_without_panicking() {
        let (_, px) = decode(&render(&Mesh {
            positions: vec![],
            triangles: vec![],
        }));
        assert!(px.iter().all(|&b| b == 0));
        let flat = Mesh {
            positions: vec![[0.0; 3], [0.0; 3], [0.0; 3]],
            triangles: vec![[0, 1, 2]],
        };
        render(&flat);
    }
}
