//! Features that do not vary are found by a rule, before any metric sees them. Left to the
//! metrics, eight identical images were caught only when a factorisation happened to fail: on
//! one CPU a Cholesky refused the matrix, on another (AVX-512) the rounding left a scatter just
//! positive and SFDA scored 0.5 and NCTI 0.0. Features in f32 carry about 7 significant digits,
//! so rounding alone gives a relative variance near 1e-14; any real variation sits far above
//! 1e-10 of the features' mean squared norm, which is where the line is drawn.

use tch::TchError;

use crate::stats::{ClassMoments, Spread};

/// A scatter (per image) below this fraction of the mean squared norm is no variation at all.
pub const RELATIVE_FLOOR: f64 = 1e-10;

/// Why no metric can score these statistics, or None when the features vary within classes.
pub fn check(stats: &ClassMoments) -> Result<Option<String>, TchError> {
    let (spread, largest_class) = match stats.spread()? {
        Some(spread) => (spread, stats.counts().iter().copied().max().unwrap_or(0)),
        None => {
            let (rows, labels) = stats.sample_rows()?;
            let mut counts = std::collections::HashMap::new();
            for l in &labels {
                *counts.entry(*l).or_insert(0u64) += 1;
            }
            let largest = counts.values().copied().max().unwrap_or(0);
            (Spread::of_rows(&rows, &labels)?, largest)
        }
    };
    if largest_class < 2 {
        return Ok(Some(
            "every class has a single image here, so nothing can vary within a class".to_owned(),
        ));
    }
    Ok(judge(&spread))
}

fn judge(s: &Spread) -> Option<String> {
    let floor = RELATIVE_FLOOR * s.mean_square;
    let what = if s.total <= floor {
        "the features do not vary across images"
    } else if s.within <= floor {
        "the features do not vary within any class"
    } else {
        return None;
    };
    let scale = if s.mean_square > 0.0 {
        format!(
            "{:.1e} of their mean squared norm",
            s.total.min(s.within) / s.mean_square
        )
    } else {
        "all zero".to_owned()
    };
    Some(format!(
        "{what} ({scale}): identical images, or a dead layer"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spread(total: f64, within: f64, mean_square: f64) -> Spread {
        Spread {
            total,
            within,
            mean_square,
        }
    }

    #[test]
    fn the_line_is_relative_to_the_features_scale() {
        assert_eq!(judge(&spread(1e-3, 1e-4, 1.0)), None);
        // The same proportions a million times larger or smaller: the same verdict.
        assert_eq!(judge(&spread(1e3, 1e2, 1e6)), None);
        assert_eq!(judge(&spread(1e-9, 1e-10, 1e-6)), None);
        assert_eq!(
            judge(&spread(3e-15, 1e-15, 1.0)).as_deref(),
            Some("the features do not vary across images (1.0e-15 of their mean squared norm): identical images, or a dead layer")
        );
        assert_eq!(
            judge(&spread(1e-2, 2e-12, 100.0)).as_deref(),
            Some("the features do not vary within any class (2.0e-14 of their mean squared norm): identical images, or a dead layer")
        );
        assert_eq!(
            judge(&spread(0.0, 0.0, 0.0)).as_deref(),
            Some("the features do not vary across images (all zero): identical images, or a dead layer")
        );
    }
}
