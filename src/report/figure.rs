//! scores.svg: the score the cuts were chosen by (the strategy's) along each model's layers, with each model's recommended cut
//! and the overall pick marked, so that a user can see at a glance where each model peaks, how
//! clearly its best layer stands out from the rest, and why the recommendation is what it is.
//! Models name their layers differently, so each model gets its own small panel with its own
//! layer names on the x axis; all panels share one y scale, because comparing models is half of
//! the decision and separate scales would make a useless model look as good as a useful one.
//! The layout is fixed, whatever the report: up to three panels a row, layer names at 45
//! degrees, and the legend in one row, the figure never narrower than it.
//! The SVG is written by hand: plotters' SVG backend would also work without font files, but
//! categorical axes, the markers and one legend for the whole grid would still be drawn by hand,
//! for four more crates. Text is left to the viewer's fonts, so nothing here needs fonts
//! installed.
//! This file gathers the report's rows into panels and lays out the whole figure: the heading,
//! the legend and the grid of panels; panel.rs draws each panel (and holds the shared y scale),
//! svg_text.rs the text primitives both use.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::panel::{draw_panel, panel_height, Frame, Panel, Scale};
use super::ranking::{score_of, Report};
use super::svg_text::{escape, star, text_width};
use crate::recommend::{Cut, Recommendation};

/// Line and dot colours of successive panels: matplotlib's default cycle, familiar to readers.
const COLOURS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];
const MARGIN: f64 = 16.0;
const PANEL_W: f64 = 300.0;
const COLS: usize = 3;
const GAP_X: f64 = 28.0;
const GAP_Y: f64 = 18.0;
/// Above the panels: the baselines of the title and of the line under it, the middle of the
/// legend's row, and the top of the first row of panels.
const TITLE_Y: f64 = MARGIN + 14.0;
const SUBTITLE_Y: f64 = TITLE_Y + 17.0;
const LEGEND_Y: f64 = SUBTITLE_Y + 20.0;
const PANELS_Y: f64 = LEGEND_Y + 18.0;

pub fn svg(report: &Report) -> String {
    // The score the cuts were chosen by, so that the marked cuts are that curve's maxima.
    let metric = report.recommendation.cut_metric.as_str();
    let rows = report
        .results
        .iter()
        .map(|r| (r.model.as_str(), r.layer.as_str(), score_of(r, metric)));
    let mut panels = panels(rows, &report.layer_cuts, &report.recommendation);
    for p in &mut panels {
        p.random = report
            .results
            .iter()
            .any(|r| r.model == p.model && r.pretrained == Some(false));
    }
    draw(
        metric,
        &panels,
        model_note(&report.recommendation).as_deref(),
    )
}

/// What chose the model, for the line under the title: the panels plot the cut's score, so the
/// model's own score is said in words.
fn model_note(rec: &Recommendation) -> Option<String> {
    let (model, score, layer) = (
        rec.model.as_deref()?,
        rec.score?,
        rec.score_layer.as_deref()?,
    );
    let value = match rec.score_se {
        Some(se) => format!("{score:.4} ± {se:.4}"),
        None => format!("{score:.4}"),
    };
    Some(format!(
        "the model was chosen by {}: {model} has the best, {value} at {layer}",
        crate::metrics::label(&rec.metric)
    ))
}

/// One panel per model, in the order the rows (model, layer, score) first name them.
fn panels<'a>(
    rows: impl IntoIterator<Item = (&'a str, &'a str, f64)>,
    cuts: &'a BTreeMap<String, Cut>,
    rec: &'a Recommendation,
) -> Vec<Panel<'a>> {
    let mut panels: Vec<Panel> = Vec::new();
    for (model, layer, score) in rows {
        if let Some(p) = panels.iter_mut().find(|p| p.model == model) {
            p.layers.push((layer, score));
            continue;
        }
        let cut = cuts.get(model);
        panels.push(Panel {
            model,
            layers: vec![(layer, score)],
            cut: cut.map(|c| c.layer.as_str()),
            alternatives: cut
                .map(|c| c.alternatives.iter().map(String::as_str).collect())
                .unwrap_or_default(),
            pick: (rec.model.as_deref() == Some(model)).then_some(rec.layer.as_deref()),
            random: false,
        });
    }
    panels
}

/// Draws a legend's marker centred on (x, y).
type Icon = fn(&mut String, f64, f64);

/// The legend's entries: the marker and its explanation.
fn legend_entries() -> [(Icon, &'static str); 4] {
    [
        (
            |o, x, y| {
                let _ = write!(
                    o,
                    r##"<line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#555" stroke-width="2"/><circle cx="{x:.1}" cy="{y:.1}" r="2.5" fill="#555"/>"##,
                    x - 10.0,
                    x + 10.0
                );
            },
            "score at each layer",
        ),
        (
            |o, x, y| {
                let _ = write!(
                    o,
                    r##"<circle cx="{x:.1}" cy="{y:.1}" r="6" fill="#555" stroke="black" stroke-width="1.5"/>"##
                );
            },
            "recommended cut",
        ),
        (
            |o, x, y| {
                let _ = write!(
                    o,
                    r##"<circle cx="{x:.1}" cy="{y:.1}" r="6" fill="white" stroke="#555" stroke-width="2"/><circle cx="{x:.1}" cy="{y:.1}" r="2.5" fill="#555"/>"##
                );
            },
            "within noise of the cut",
        ),
        (
            |o, x, y| {
                let _ = write!(
                    o,
                    r##"<polygon points="{}" fill="#f2b705" stroke="black" stroke-width="1"/>"##,
                    star(x, y, 8.0)
                );
            },
            "overall pick",
        ),
    ]
}

/// Room one legend entry takes in its row: the marker, the text, and the gap to the next entry.
fn legend_entry_width(text: &str) -> f64 {
    26.0 + text_width(text, 11.0) + 12.0
}

/// The legend's whole row, which the figure is never narrower than.
fn legend_width() -> f64 {
    legend_entries()
        .iter()
        .map(|e| legend_entry_width(e.1))
        .sum()
}

/// The whole figure: a title, the legend, then one panel per model, left to right, top to bottom.
fn draw(metric: &str, panels: &[Panel], note: Option<&str>) -> String {
    let cols = panels.len().clamp(1, COLS);
    let rows = panels.len().div_ceil(cols).max(1);
    // Below three panels a row the panels widen instead, so that even one model's figure has
    // room for the legend's one row (and so for its title).
    let width = (2.0 * MARGIN + cols as f64 * PANEL_W + (cols - 1) as f64 * GAP_X)
        .max(2.0 * MARGIN + legend_width());
    let panel_w = (width - 2.0 * MARGIN - (cols - 1) as f64 * GAP_X) / cols as f64;
    let panel_h = panel_height(panels);
    let height = PANELS_Y + rows as f64 * panel_h + (rows - 1) as f64 * GAP_Y + MARGIN;

    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="sans-serif" font-size="12">"#
    );
    out.push_str("<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
    draw_heading(&mut out, metric, note);
    draw_legend(&mut out);
    if panels.is_empty() {
        let _ = writeln!(
            out,
            r##"<text x="{MARGIN}" y="{:.1}" fill="#555">No model has a {} score</text>"##,
            PANELS_Y + 20.0,
            escape(metric)
        );
    }
    let scale = Scale::new(panels);
    for (i, panel) in panels.iter().enumerate() {
        let frame = Frame {
            x: MARGIN + (i % cols) as f64 * (panel_w + GAP_X),
            y: PANELS_Y + (i / cols) as f64 * (panel_h + GAP_Y),
            w: panel_w,
            h: panel_h,
        };
        let colour = COLOURS[i % COLOURS.len()];
        draw_panel(&mut out, metric, panel, colour, &scale, &frame);
    }
    out.push_str("</svg>\n");
    out
}

/// The figure's title and the line under it.
fn draw_heading(out: &mut String, metric: &str, note: Option<&str>) {
    let _ = writeln!(
        out,
        r#"<text x="{MARGIN}" y="{TITLE_Y:.1}" font-size="15" font-weight="bold">{} by layer (higher transfers better)</text>"#,
        escape(metric)
    );
    let note = note.map_or(String::new(), |n| format!("; {n}"));
    let _ = writeln!(
        out,
        r##"<text x="{MARGIN}" y="{SUBTITLE_Y:.1}" font-size="11" fill="#555">One panel per model, all on the same y scale{}</text>"##,
        escape(&note)
    );
}

/// The legend, in one row: the figure is made wide enough for it (see `draw`).
fn draw_legend(out: &mut String) {
    let mut x = MARGIN;
    let _ = writeln!(out, r#"<g class="legend" font-size="11">"#);
    for (icon, text) in legend_entries() {
        icon(out, x + 10.0, LEGEND_Y);
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
            x + 26.0,
            LEGEND_Y + 4.0,
            escape(text)
        );
        x += legend_entry_width(text);
    }
    out.push_str("</g>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn panel<'a>(model: &'a str, layers: &[(&'a str, f64)], cut: Option<&'a str>) -> Panel<'a> {
        Panel {
            model,
            layers: layers.to_vec(),
            cut,
            alternatives: Vec::new(),
            pick: None,
            random: false,
        }
    }

    /// The demo's two models (trained and random, same layer names) and one with other layer
    /// names, a name that needs escaping and two layers without a score.
    fn example() -> Vec<Panel<'static>> {
        let mut trained = panel(
            "efficientnet_lite0",
            &[
                ("_blocks.2", 6.5),
                ("_blocks.5", 40.0),
                ("_blocks.10", 310.0),
                ("_blocks.15", 1100.0),
                ("_swish", 1960.0),
            ],
            Some("_swish"),
        );
        trained.alternatives = vec!["_blocks.15"];
        trained.pick = Some(Some("_swish"));
        let random = panel(
            "efficientnet_lite0_random",
            &[
                ("_blocks.2", 0.004),
                ("_blocks.5", 0.006),
                ("_blocks.10", 0.009),
                ("_blocks.15", 0.008),
                ("_swish", 0.007),
            ],
            Some("_blocks.10"),
        );
        let resnet = panel(
            "resnet18 <v1> & \"friends\"",
            &[
                ("layer1", 3.0),
                ("layer2", f64::NAN),
                ("layer3", 400.0),
                ("layer4", 900.0),
                ("avgpool", f64::NEG_INFINITY),
            ],
            Some("layer4"),
        );
        vec![trained, random, resnet]
    }

    #[test]
    fn panels_follow_the_report() {
        // score_of gives -inf for a row without the metric.
        let rows = [
            ("b", "x1", 1.0),
            ("a", "y1", 5.0),
            ("b", "x2", f64::NEG_INFINITY),
            ("b", "x3", 2.0),
            ("a", "y2", 4.9),
        ];
        let cuts: BTreeMap<String, Cut> = [(
            "a".to_owned(),
            Cut {
                layer: "y1".into(),
                score: 5.0,
                se: None,
                alternatives: vec!["y2".into()],
                stays_first: None,
            },
        )]
        .into();
        let rec = Recommendation {
            model: Some("a".into()),
            layer: Some("y1".into()),
            model_rule: "primary".into(),
            metric: "transrate".into(),
            score: Some(5.0),
            score_layer: Some("y1".into()),
            score_se: None,
            models_within_noise: Vec::new(),
            stays_first: None,
            strategy: "primary".into(),
            cut_metric: "transrate".into(),
            cut_score: Some(5.0),
            cut_se: None,
            alternatives: vec!["y2".into()],
            reliability: None,
            text: String::new(),
        };
        let got = panels(rows, &cuts, &rec);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].model, "b");
        assert_eq!(got[0].layers.len(), 3);
        assert_eq!(got[0].layers[1].0, "x2");
        assert!(!got[0].layers[1].1.is_finite());
        assert_eq!((got[0].cut, got[0].pick), (None, None));
        assert_eq!(
            got[1],
            Panel {
                model: "a",
                layers: vec![("y1", 5.0), ("y2", 4.9)],
                cut: Some("y1"),
                alternatives: vec!["y2"],
                pick: Some(Some("y1")),
                random: false,
            }
        );
        let svg = draw("transrate", &got, model_note(&rec).as_deref());
        assert!(svg.contains(
            "One panel per model, all on the same y scale; the model was chosen by TransRate: a \
             has the best, 5.0000 at y1</text>"
        ));
        assert_eq!(svg.matches(r#"class="cut""#).count(), 1);
        assert_eq!(svg.matches(r#"class="alternative""#).count(), 1);
        assert_eq!(svg.matches(r#"class="pick""#).count(), 1);
    }

    /// Text contents of the elements whose opening tag contains `marker`.
    fn texts_of<'s>(svg: &'s str, marker: &str) -> Vec<&'s str> {
        svg.lines()
            .filter(|l| l.contains(marker))
            .filter_map(|l| {
                let start = l.find('>')? + 1;
                let end = l[start..].find('<')? + start;
                Some(&l[start..end])
            })
            .collect()
    }

    #[test]
    fn layer_names_are_the_x_labels_of_each_panel() {
        let svg = draw("transrate", &example(), None);
        let labels = texts_of(&svg, r#"class="layer""#);
        assert_eq!(
            labels,
            [
                "_blocks.2",
                "_blocks.5",
                "_blocks.10",
                "_blocks.15",
                "_swish",
                "_blocks.2",
                "_blocks.5",
                "_blocks.10",
                "_blocks.15",
                "_swish",
                "layer1",
                "layer2",
                "layer3",
                "layer4",
                "avgpool"
            ]
        );
        assert_eq!(svg.matches(r#"<g class="panel">"#).count(), 3);
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn one_cut_marker_per_model_with_a_cut_and_one_star() {
        let mut panels = example();
        panels[1].cut = None; // a metric that scores whole models chooses no cut
        let svg = draw("transrate", &panels, None);
        let cuts: Vec<&str> = svg
            .lines()
            .filter(|l| l.contains(r#"class="cut""#))
            .collect();
        assert_eq!(cuts.len(), 2, "{svg}");
        assert!(cuts[0].contains("recommended cut of efficientnet_lite0: _swish"));
        assert!(cuts[1].contains("layer4"));
        assert_eq!(svg.matches(r#"class="alternative""#).count(), 1);
        assert_eq!(svg.matches(r#"class="pick""#).count(), 1);
        assert!(svg.contains("★ efficientnet_lite0 (overall pick)"));
        // The cut's name is set in bold under its panel.
        let bold: Vec<&str> = svg
            .lines()
            .filter(|l| l.contains(r#"class="layer""#) && l.contains(r#"font-weight="bold""#))
            .collect();
        assert_eq!(bold.len(), 2, "{bold:?}");
        assert!(bold[0].contains(">_swish<") && bold[1].contains(">layer4<"));
    }

    #[test]
    fn legend_explains_every_marker() {
        let svg = draw("transrate", &example(), None);
        for text in [
            "score at each layer",
            "recommended cut",
            "within noise of the cut",
            "overall pick",
        ] {
            assert!(svg.contains(&format!(">{text}</text>")), "{text}");
        }
        assert!(svg.contains("transrate by layer"));
    }

    #[test]
    fn names_are_escaped() {
        let mut panels = vec![panel(
            "m<1>&'x'",
            &[("a\"<b>", 1.0), ("c&d", 2.0)],
            Some("c&d"),
        )];
        panels[0].pick = Some(Some("c&d"));
        let svg = draw("t<r>", &panels, None);
        assert!(svg.contains("m&lt;1&gt;&amp;&apos;x&apos;"));
        assert!(svg.contains("a&quot;&lt;b&gt;"));
        assert!(svg.contains("c&amp;d"));
        assert!(svg.contains("t&lt;r&gt; by layer"));
        for bad in ["m<1>", "<b>", "c&d", "t<r>"] {
            assert!(!svg.contains(bad), "{bad} unescaped");
        }
        assert_eq!(svg.matches(r#"class="cut""#).count(), 1);
        assert_eq!(escape("a\u{1}b"), "a\u{fffd}b");
    }

    #[test]
    fn non_finite_scores_are_skipped() {
        let panels = vec![panel(
            "m",
            &[
                ("l1", 1.0),
                ("l2", f64::NAN),
                ("l3", 2.0),
                ("l4", 3.0),
                ("l5", f64::INFINITY),
            ],
            Some("l2"),
        )];
        let svg = draw("transrate", &panels, None);
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
        // l1 stands alone, l3-l4 make the only line; the NaN cut gets no marker.
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert_eq!(svg.matches(r##"r="2.5" fill="#1f77b4""##).count(), 3);
        assert_eq!(svg.matches(r#"class="cut""#).count(), 0);
        // Every label is still there, and the y ticks span the finite scores only.
        assert_eq!(texts_of(&svg, r#"class="layer""#).len(), 5);
        let ticks = texts_of(&svg, r#"text-anchor="end">"#);
        assert!(
            ticks.contains(&"1.0") && ticks.contains(&"3.0"),
            "{ticks:?}"
        );

        let none = draw(
            "transrate",
            &[panel("m", &[("l1", f64::NAN)], Some("l1"))],
            None,
        );
        assert!(none.contains("no finite transrate score"));
        assert!(!none.contains("NaN"));
    }

    #[test]
    fn one_model_with_one_layer_renders() {
        let mut p = panel("only", &[("head", 1960.0)], Some("head"));
        p.pick = Some(Some("head"));
        let svg = draw("transrate", &[p], None);
        assert_eq!(texts_of(&svg, r#"class="layer""#), ["head"]);
        // Even a short name is set at 45 degrees, as every other panel's are.
        assert!(svg.contains("rotate(-45"));
        assert_eq!(svg.matches(r#"class="cut""#).count(), 1);
        assert_eq!(svg.matches(r#"class="pick""#).count(), 1);
        assert!(!svg.contains("NaN"));
        let ticks = texts_of(&svg, r#"text-anchor="end">"#);
        assert!(ticks.len() >= 3, "{ticks:?}");

        let empty = draw("leep", &[], None);
        assert!(empty.contains("No model has a leep score"));
    }

    /// The value of the first `name="..."` attribute in `line`.
    fn attr(line: &str, name: &str) -> f64 {
        let start = line.find(&format!(" {name}=\"")).expect(name) + name.len() + 3;
        let len = line[start..].find('"').expect(name);
        line[start..start + len].parse().expect(name)
    }

    #[test]
    fn legend_is_one_row_inside_the_figure() {
        for count in 0..=4 {
            let panels: Vec<Panel> = (0..count)
                .map(|_| panel("m", &[("l1", 1.0), ("l2", 2.0)], Some("l2")))
                .collect();
            let svg = draw("transrate", &panels, None);
            let width = attr(svg.lines().next().unwrap(), "width");
            let legend: Vec<&str> = svg
                .lines()
                .skip_while(|l| !l.starts_with(r#"<g class="legend""#))
                .take_while(|l| *l != "</g>")
                .skip(1)
                .collect();
            assert_eq!(legend.len(), 4, "{svg}");
            for line in legend {
                let text = &line[line.rfind("<text").unwrap()..];
                let label = texts_of(text, "<text")[0];
                assert_eq!(attr(text, "y"), LEGEND_Y + 4.0, "{count} panels: {line}");
                let right = attr(text, "x") + text_width(label, 11.0);
                assert!(right <= width - MARGIN, "{count} panels: {line}");
            }
        }
    }

    #[test]
    fn long_or_many_labels_are_rotated_and_thinned() {
        let names: Vec<String> = (0..40)
            .map(|i| format!("features.{i}.conv.block"))
            .collect();
        let layers: Vec<(&str, f64)> = names.iter().map(|n| (n.as_str(), 1.0)).collect();
        let p = panel("m", &layers, Some(names[7].as_str()));
        let svg = draw("transrate", &[p], None);
        let labels = texts_of(&svg, r#"class="layer""#);
        assert!(labels.len() < 40 && labels.len() >= 5, "{labels:?}");
        assert!(labels.contains(&"features.7.conv.b…"), "{labels:?}");
        assert!(svg.contains("rotate(-45"));
    }

    /// Writes examples to /tmp/fig*.svg for a look: `cargo test ... -- --ignored`.
    #[test]
    #[ignore]
    fn write_examples() {
        let mut panels = example();
        panels.push(panel(
            "single_layer_model",
            &[("head", 700.0)],
            Some("head"),
        ));
        std::fs::write("/tmp/fig.svg", draw("transrate", &panels, None))
            .expect("write /tmp/fig.svg");
        let mut one = panel("only_model", &[("head", 1960.0)], None);
        one.pick = Some(None);
        std::fs::write("/tmp/fig_one.svg", draw("leep", &[one], None))
            .expect("write /tmp/fig_one.svg");
        let names: Vec<String> = (0..24)
            .map(|i| format!("features.{i}.conv.block"))
            .collect();
        let layers: Vec<(&str, f64)> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), -2.3 + 0.05 * i as f64))
            .collect();
        let mut many = panel(
            "mobilenet_v3_large_with_a_rather_long_name",
            &layers,
            Some(&names[23]),
        );
        many.alternatives = vec![&names[21], &names[22]];
        many.pick = Some(Some(&names[23]));
        let svg = draw(
            "nce",
            &[many, panel("m2", &[("a", -2.0), ("b", -1.5)], Some("b"))],
            None,
        );
        std::fs::write("/tmp/fig_many.svg", svg).expect("write /tmp/fig_many.svg");
    }
}
