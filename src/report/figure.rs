//! scores.svg: the primary metric along each model's layers, one line per model, so the depth
//! at which each model peaks can be seen at a glance. Plain SVG, no plotting dependency.

use std::fmt::Write;

use super::{score_of, Report};

const W: f64 = 720.0;
const H: f64 = 420.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 170.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
const COLOURS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

pub fn svg(report: &Report) -> String {
    let metric = report.primary_metric();
    let mut models: Vec<(&str, Vec<(&str, f64)>)> = Vec::new();
    for row in &report.results {
        let point = (row.layer.as_str(), score_of(row, metric));
        match models.iter_mut().find(|(m, _)| *m == row.model) {
            Some((_, points)) => points.push(point),
            None => models.push((&row.model, vec![point])),
        }
    }
    let scores: Vec<f64> = models
        .iter()
        .flat_map(|(_, p)| p.iter().map(|x| x.1))
        .filter(|s| s.is_finite())
        .collect();
    let (mut lo, mut hi) = scores
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &s| {
            (a.min(s), b.max(s))
        });
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        (lo, hi) = (lo - 0.5, hi + 0.5);
    }
    let pad = 0.05 * (hi - lo);
    let (lo, hi) = (lo - pad, hi + pad);
    let depth = models
        .iter()
        .map(|(_, p)| p.len())
        .max()
        .unwrap_or(1)
        .max(2);
    let x = |i: usize| LEFT + (W - LEFT - RIGHT) * i as f64 / (depth - 1) as f64;
    let y = |s: f64| TOP + (H - TOP - BOTTOM) * (hi - s) / (hi - lo);

    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="22" font-size="14">{} by layer (higher transfers better)</text>"#,
        escape(metric)
    );
    let _ = writeln!(
        out,
        r#"<line x1="{LEFT}" y1="{}" x2="{}" y2="{}" stroke="black"/>"#,
        H - BOTTOM,
        W - RIGHT,
        H - BOTTOM
    );
    let _ = writeln!(
        out,
        r#"<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{}" stroke="black"/>"#,
        H - BOTTOM
    );
    for k in 0..=4 {
        let s = lo + (hi - lo) * k as f64 / 4.0;
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{s:.3}</text>"#,
            LEFT - 6.0,
            y(s) + 4.0
        );
    }
    for i in 0..depth {
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            x(i),
            H - BOTTOM + 18.0,
            i + 1
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{}" text-anchor="middle">layer (in the order listed)</text>"#,
        (LEFT + W - RIGHT) / 2.0,
        H - 12.0
    );
    for (m, (name, points)) in models.iter().enumerate() {
        let colour = COLOURS[m % COLOURS.len()];
        let path: Vec<String> = points
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{:.1},{:.1}", x(i), y(p.1)))
            .collect();
        let _ = writeln!(
            out,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
            path.join(" ")
        );
        for (i, (layer, s)) in points.iter().enumerate() {
            let _ = writeln!(
                out,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{colour}"><title>{} {}: {s:.4}</title></circle>"#,
                x(i),
                y(*s),
                escape(name),
                escape(layer)
            );
        }
        let ly = TOP + 18.0 * m as f64;
        let _ = writeln!(
            out,
            r#"<rect x="{}" y="{:.1}" width="12" height="12" fill="{colour}"/>"#,
            W - RIGHT + 14.0,
            ly
        );
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{:.1}">{}</text>"#,
            W - RIGHT + 32.0,
            ly + 10.0,
            escape(name)
        );
    }
    out.push_str("</svg>\n");
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
