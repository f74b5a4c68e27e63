//! The text primitives of the hand-written SVG in scores.svg: the width a string will take in
//! the viewer's font, shortening a name to fit, escaping names from users' files, and the star
//! that marks the overall pick. Both the figure (figure.rs) and each model's panel in it
//! (panel.rs) need them, so they live below both rather than in either, which keeps the modules'
//! imports one-way: figure -> panel -> svg_text.

/// Sans-serif text is about 0.6 em per character; the viewer's font decides the rest.
pub(super) fn text_width(s: &str, size: f64) -> f64 {
    s.chars().count() as f64 * size * 0.6
}

/// `s` itself, or its first `max - 1` characters and an ellipsis when it is longer than `max`.
pub(super) fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// A five-pointed star centred on (x, y), for the overall pick.
pub(super) fn star(x: f64, y: f64, r: f64) -> String {
    (0..10)
        .map(|k| {
            let radius = if k % 2 == 0 { r } else { 0.45 * r };
            let a = std::f64::consts::PI * (k as f64 / 5.0 - 0.5);
            format!("{:.1},{:.1}", x + radius * a.cos(), y + radius * a.sin())
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Model and layer names come from users' files; XML also forbids most control characters.
pub(super) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() && !matches!(c, '\t' | '\n' | '\r') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_shortened_by_characters_not_bytes() {
        assert_eq!(shorten("layer4", 18), "layer4");
        assert_eq!(shorten("features.denseblock4", 10), "features.…");
        // Multi-byte characters count once each.
        assert_eq!(shorten("ééééé", 4), "ééé…");
        assert_eq!(shorten("abc", 0), "…");
    }

    #[test]
    fn markup_and_control_characters_are_escaped() {
        assert_eq!(
            escape("a<b>&\"c'\u{1}\t"),
            "a&lt;b&gt;&amp;&quot;c&apos;\u{fffd}\t"
        );
    }

    #[test]
    fn the_star_has_ten_points_about_its_centre() {
        let points: Vec<(f64, f64)> = star(10.0, 20.0, 5.0)
            .split(' ')
            .map(|p| {
                let (x, y) = p.split_once(',').unwrap();
                (x.parse().unwrap(), y.parse().unwrap())
            })
            .collect();
        assert_eq!(points.len(), 10);
        // The first point is straight above the centre, at the full radius.
        assert_eq!(points[0], (10.0, 15.0));
    }
}
