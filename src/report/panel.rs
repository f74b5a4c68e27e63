//! One model's panel of scores.svg: the panel's data (`Panel`), the y scale all panels share,
//! which layer names fit under the axis, and the drawing of the title, axes, curve and markers
//! inside the box the figure gives the panel. It is apart from figure.rs, which lays the panels
//! out in a grid under the heading and the legend, because a panel is drawn the same wherever the
//! grid puts it, and the two together were past the 600 lines a source file may have. It uses
//! nothing of figure.rs, only the text primitives in svg_text.rs.

use std::fmt::Write;

use super::svg_text::{escape, shorten, star, text_width};

/// Inside a panel: room for the y tick labels, the title, and the plot itself.
const PLOT_LEFT: f64 = 62.0;
const PLOT_RIGHT: f64 = 12.0;
const PANEL_TITLE: f64 = 26.0;
const PLOT_H: f64 = 150.0;
/// Keeps the top point's star and the lowest point's marker inside the plot frame.
const PLOT_PAD: f64 = 20.0;
const TICK_FONT: f64 = 10.0;
const LABEL_FONT: f64 = 10.0;
/// Long layer names are cut to this many characters (the full name stays in a tooltip), so a
/// rotated label cannot reach into the neighbouring panel.
const MAX_LABEL: usize = 18;
/// Rotated labels closer than this (perpendicular to their baselines) would overlap.
const LABEL_SPACING: f64 = 12.0;

/// One model's panel, in plain data so that the drawing can be tested without a run.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Panel<'a> {
    pub(super) model: &'a str,
    /// Layers in the order the config lists them, with the primary metric's score (any value:
    /// non-finite ones are left out of the drawing).
    pub(super) layers: Vec<(&'a str, f64)>,
    /// The recommended cut; None when the metric scores whole models.
    pub(super) cut: Option<&'a str>,
    /// Layers whose scores cannot be told apart from the cut's.
    pub(super) alternatives: Vec<&'a str>,
    /// This is the recommended model, and the recommended layer when there is one.
    pub(super) pick: Option<Option<&'a str>>,
    /// The model has random weights (its manifest says `pretrained: false`).
    pub(super) random: bool,
}

/// The y axis shared by all panels: bounds on tick steps, so the frame ends on labelled values.
pub(super) struct Scale {
    lo: f64,
    hi: f64,
    step: f64,
}

impl Scale {
    pub(super) fn new(panels: &[Panel]) -> Scale {
        let (mut lo, mut hi) = panels
            .iter()
            .flat_map(|p| p.layers.iter().map(|l| l.1))
            .filter(|s| s.is_finite())
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), s| {
                (a.min(s), b.max(s))
            });
        if !lo.is_finite() {
            (lo, hi) = (0.0, 1.0);
        }
        if hi - lo <= 1e-12 * hi.abs().max(lo.abs()).max(1e-300) {
            // One layer, or all equal: a range around the value, so the point sits mid-panel.
            let half = if lo == 0.0 { 0.5 } else { 0.1 * lo.abs() };
            (lo, hi) = (lo - half, hi + half);
        }
        let raw = (hi - lo) / 4.0;
        let mag = 10f64.powf(raw.log10().floor());
        let step = [1.0, 2.0, 2.5, 5.0, 10.0]
            .iter()
            .map(|m| m * mag)
            .find(|s| *s >= raw)
            .unwrap_or(10.0 * mag);
        Scale {
            lo: (lo / step).floor() * step,
            hi: (hi / step).ceil() * step,
            step,
        }
    }

    fn ticks(&self) -> Vec<f64> {
        let n = ((self.hi - self.lo) / self.step).round() as usize;
        (0..=n).map(|k| self.lo + self.step * k as f64).collect()
    }

    /// Few enough digits to tell neighbouring ticks apart, no more.
    fn label(&self, v: f64) -> String {
        let v = if v.abs() < 1e-9 * self.step { 0.0 } else { v };
        if v.abs() >= 1e6 || self.step < 1e-4 {
            return format!("{v:.2e}");
        }
        let mut decimals = (-self.step.log10().floor()).max(0.0) as usize;
        if format!("{:.*}", decimals, self.step).parse::<f64>() != Ok(self.step) {
            decimals += 1; // 0.25, 2.5e-3: the step itself needs one more digit
        }
        format!("{v:.decimals$}")
    }
}

/// Which layer names are set under a panel's axis: every `every`-th layer, counted from `phase`.
struct XLabels {
    every: usize,
    phase: usize,
}

/// Names are always set at 45 degrees: at MAX_LABEL characters that fits under any slot once
/// thinned out, so one setting serves every panel and the grid's label band stays regular.
fn x_labels(panel: &Panel, slot: f64) -> XLabels {
    // Neighbours at 45 degrees are a slot apart along the axis, slot/sqrt(2) across baselines.
    let spacing = slot * std::f64::consts::FRAC_1_SQRT_2;
    let every = if spacing >= LABEL_SPACING {
        1
    } else {
        (LABEL_SPACING / spacing).ceil() as usize
    };
    // When names must be thinned out, the cut's name is the one a reader needs most.
    XLabels {
        every,
        phase: cut_index(panel).map_or(0, |i| i % every),
    }
}

/// Height the labels under a panel's axis need.
fn label_height(panel: &Panel) -> f64 {
    let widest = panel
        .layers
        .iter()
        .map(|l| text_width(&shorten(l.0, MAX_LABEL), LABEL_FONT))
        .fold(0.0, f64::max);
    8.0 + (widest + LABEL_FONT) * std::f64::consts::FRAC_1_SQRT_2
}

/// Height of every panel in the grid: the title, the plot, and the label band the panel with the
/// longest names needs, one height for every row keeping the grid regular.
pub(super) fn panel_height(panels: &[Panel]) -> f64 {
    let labels_h = panels
        .iter()
        .map(label_height)
        .fold(8.0 + LABEL_FONT, f64::max);
    PANEL_TITLE + PLOT_H + labels_h
}

/// The box one model's panel takes in the figure: its title, plot and labels.
pub(super) struct Frame {
    pub(super) x: f64,
    pub(super) y: f64,
    pub(super) w: f64,
    pub(super) h: f64,
}

/// Where a panel's plot lies, and where a layer and a score fall in it.
struct Plot<'s> {
    left: f64,
    top: f64,
    width: f64,
    /// Each layer's share of the width; its point sits in the middle.
    slot: f64,
    scale: &'s Scale,
}

impl Plot<'_> {
    fn new<'s>(frame: &Frame, layers: usize, scale: &'s Scale) -> Plot<'s> {
        let width = frame.w - PLOT_LEFT - PLOT_RIGHT;
        Plot {
            left: frame.x + PLOT_LEFT,
            top: frame.y + PANEL_TITLE,
            width,
            slot: width / layers.max(1) as f64,
            scale,
        }
    }

    fn x(&self, i: usize) -> f64 {
        self.left + self.slot * (i as f64 + 0.5)
    }

    fn y(&self, s: f64) -> f64 {
        let Scale { lo, hi, .. } = *self.scale;
        self.top + PLOT_PAD + (PLOT_H - 2.0 * PLOT_PAD) * (hi - s) / (hi - lo)
    }

    fn bottom(&self) -> f64 {
        self.top + PLOT_H
    }
}

/// One model's panel. Later elements are drawn over earlier ones, hence the order: a layer's dot
/// over the ring that marks it as an alternative, the cut's marker over its dot.
pub(super) fn draw_panel(
    out: &mut String,
    metric: &str,
    panel: &Panel,
    colour: &str,
    scale: &Scale,
    frame: &Frame,
) {
    let plot = Plot::new(frame, panel.layers.len(), scale);
    let finite: Vec<(usize, f64)> = panel
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| (i, l.1))
        .filter(|(_, s)| s.is_finite())
        .collect();
    let _ = writeln!(out, r#"<g class="panel">"#);
    draw_title(out, panel, frame);
    draw_axes(out, &plot);
    draw_layer_names(out, panel, &plot);
    if finite.is_empty() {
        draw_no_score(out, metric, &plot);
    }
    draw_curve(out, &finite, &plot, colour);
    draw_alternatives(out, panel, &plot, colour);
    draw_points(out, panel, &finite, &plot, colour);
    draw_cut(out, metric, panel, &plot, colour);
    draw_pick(out, panel, &plot);
    out.push_str("</g>\n");
}

/// The model's name over its panel. The overall pick's panel stands out before anything in it is
/// read: highlighted, its title in bold and saying so.
fn draw_title(out: &mut String, panel: &Panel, frame: &Frame) {
    let title_size = 13.0;
    let max_chars = ((frame.w - 8.0) / (title_size * 0.62)) as usize;
    let mut title = panel.model.to_owned();
    if panel.random {
        title += " (random weights)";
    }
    if panel.pick.is_some() {
        let _ = writeln!(
            out,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#fff6d5" stroke="#e0b000"/>"##,
            frame.x - 4.0,
            frame.y - 2.0,
            frame.w + 8.0,
            frame.h + 4.0
        );
        let random = if panel.random { " (random)" } else { "" };
        title = format!(
            "★ {}{random} (overall pick)",
            shorten(panel.model, max_chars.saturating_sub(17 + random.len()))
        );
    }
    let weight = if panel.pick.is_some() {
        "bold"
    } else {
        "normal"
    };
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" font-size="{title_size}" font-weight="{weight}">{}<title>{}</title></text>"#,
        frame.x,
        frame.y + 16.0,
        escape(&shorten(&title, max_chars)),
        escape(panel.model)
    );
}

/// The plot's frame, and the shared y scale's ticks, grid lines and values.
fn draw_axes(out: &mut String, plot: &Plot) {
    let (x0, y0, plot_w) = (plot.left, plot.top, plot.width);
    let _ = writeln!(
        out,
        r#"<rect x="{x0:.1}" y="{y0:.1}" width="{plot_w:.1}" height="{PLOT_H:.1}" fill="white" stroke="black"/>"#
    );
    for t in plot.scale.ticks() {
        let ty = plot.y(t);
        let _ = writeln!(
            out,
            r##"<line x1="{x0:.1}" y1="{ty:.1}" x2="{:.1}" y2="{ty:.1}" stroke="#e4e4e4"/><line x1="{:.1}" y1="{ty:.1}" x2="{x0:.1}" y2="{ty:.1}" stroke="black"/>"##,
            x0 + plot_w,
            x0 - 4.0,
        );
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" font-size="{TICK_FONT}" text-anchor="end">{}</text>"#,
            x0 - 6.0,
            ty + 3.5,
            plot.scale.label(t)
        );
    }
}

/// A tick under every layer, and under as many as fit its name, shortened (the full name in a
/// tooltip), the cut's in bold.
fn draw_layer_names(out: &mut String, panel: &Panel, plot: &Plot) {
    let how = x_labels(panel, plot.slot);
    let cut_at = cut_index(panel);
    let y1 = plot.bottom();
    for (i, (layer, _)) in panel.layers.iter().enumerate() {
        let lx = plot.x(i);
        let _ = writeln!(
            out,
            r#"<line x1="{lx:.1}" y1="{y1:.1}" x2="{lx:.1}" y2="{:.1}" stroke="black"/>"#,
            y1 + 4.0
        );
        if i % how.every != how.phase {
            continue;
        }
        let weight = if cut_at == Some(i) { "bold" } else { "normal" };
        let _ = writeln!(
            out,
            r#"<text class="layer" x="{lx:.1}" y="{:.1}" dy="0.35em" font-size="{LABEL_FONT}" font-weight="{weight}" text-anchor="end" transform="rotate(-45 {lx:.1} {:.1})">{}<title>{}</title></text>"#,
            y1 + 8.0,
            y1 + 8.0,
            escape(&shorten(layer, MAX_LABEL)),
            escape(layer)
        );
    }
}

/// In place of a curve, when no layer of the model has a score.
fn draw_no_score(out: &mut String, metric: &str, plot: &Plot) {
    let _ = writeln!(
        out,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#555">no finite {} score</text>"##,
        plot.left + plot.width / 2.0,
        plot.top + PLOT_H / 2.0,
        escape(metric)
    );
}

/// The line through the scores (layer index, finite score) of neighbouring layers.
fn draw_curve(out: &mut String, finite: &[(usize, f64)], plot: &Plot, colour: &str) {
    // A layer without a score breaks the line rather than bridging it: the gap is honest.
    let mut runs: Vec<Vec<(usize, f64)>> = Vec::new();
    for &(i, s) in finite {
        match runs.last_mut() {
            Some(run) if run.last().is_some_and(|&(j, _)| j + 1 == i) => run.push((i, s)),
            _ => runs.push(vec![(i, s)]),
        }
    }
    for run in runs.iter().filter(|r| r.len() > 1) {
        let points: Vec<String> = run
            .iter()
            .map(|&(i, s)| format!("{:.1},{:.1}", plot.x(i), plot.y(s)))
            .collect();
        let _ = writeln!(
            out,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
            points.join(" ")
        );
    }
}

/// A ring around each layer within noise of the cut, other than the cut itself.
fn draw_alternatives(out: &mut String, panel: &Panel, plot: &Plot, colour: &str) {
    for alt in &panel.alternatives {
        if Some(*alt) == panel.cut {
            continue;
        }
        if let Some((i, s)) = score_at(panel, alt) {
            let _ = writeln!(
                out,
                r#"<circle class="alternative" cx="{:.1}" cy="{:.1}" r="6" fill="white" stroke="{colour}" stroke-width="2"/>"#,
                plot.x(i),
                plot.y(s)
            );
        }
    }
}

/// A dot at each layer with a score, the score in its tooltip.
fn draw_points(
    out: &mut String,
    panel: &Panel,
    finite: &[(usize, f64)],
    plot: &Plot,
    colour: &str,
) {
    for &(i, s) in finite {
        let _ = writeln!(
            out,
            r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{colour}"><title>{} {}: {}</title></circle>"#,
            plot.x(i),
            plot.y(s),
            escape(panel.model),
            escape(panel.layers[i].0),
            s
        );
    }
}

/// The recommended cut's marker, when the cut has a score.
fn draw_cut(out: &mut String, metric: &str, panel: &Panel, plot: &Plot, colour: &str) {
    if let Some((i, s)) = panel.cut.and_then(|c| score_at(panel, c)) {
        let _ = writeln!(
            out,
            r#"<circle class="cut" cx="{:.1}" cy="{:.1}" r="6" fill="{colour}" stroke="black" stroke-width="1.5"><title>recommended cut of {}: {} ({} {})</title></circle>"#,
            plot.x(i),
            plot.y(s),
            escape(panel.model),
            escape(panel.layers[i].0),
            escape(metric),
            s
        );
    }
}

/// The star over the overall pick's layer.
fn draw_pick(out: &mut String, panel: &Panel, plot: &Plot) {
    if let Some((i, s)) = panel.pick.flatten().and_then(|l| score_at(panel, l)) {
        // Above the point, not on it, so the cut's own marker stays visible underneath.
        let _ = writeln!(
            out,
            r##"<polygon class="pick" points="{}" fill="#f2b705" stroke="black" stroke-width="1"><title>overall pick: {} at {}</title></polygon>"##,
            star(plot.x(i), plot.y(s) - 15.0, 8.0),
            escape(panel.model),
            escape(panel.layers[i].0)
        );
    }
}

/// Where the recommended cut is among the panel's layers.
fn cut_index(panel: &Panel) -> Option<usize> {
    panel
        .cut
        .and_then(|c| panel.layers.iter().position(|l| l.0 == c))
}

/// The layer's index and score, when it is the panel's and has a finite score.
fn score_at(panel: &Panel, layer: &str) -> Option<(usize, f64)> {
    let i = panel.layers.iter().position(|l| l.0 == layer)?;
    let s = panel.layers[i].1;
    s.is_finite().then_some((i, s))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A panel of one model with these scores, and no cut.
    fn scores<'a>(layers: &[(&'a str, f64)]) -> Panel<'a> {
        Panel {
            model: "m",
            layers: layers.to_vec(),
            cut: None,
            alternatives: Vec::new(),
            pick: None,
            random: false,
        }
    }

    #[test]
    fn scale_labels_read_well() {
        let s = Scale::new(&[scores(&[("a", 6.5), ("b", 1960.0)])]);
        assert_eq!((s.lo, s.hi, s.step), (0.0, 2000.0, 500.0));
        let labels: Vec<String> = s.ticks().iter().map(|&t| s.label(t)).collect();
        assert_eq!(labels, ["0", "500", "1000", "1500", "2000"]);
        let s = Scale::new(&[scores(&[("a", -2.3), ("b", -1.08)])]);
        let labels: Vec<String> = s.ticks().iter().map(|&t| s.label(t)).collect();
        assert_eq!(labels, ["-2.5", "-2.0", "-1.5", "-1.0"]);
    }
}
