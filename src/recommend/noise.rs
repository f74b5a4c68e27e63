//! Which candidates this run cannot tell apart: the best by a score, and every other whose
//! score is below it by less than twice the standard error of the difference, from the
//! leave-one-fold-out scores of the same folds (metrics/jackknife.rs). Without fold scores (a
//! metric that does not read the sample, or `folds: 0`) a fixed margin stands in.

use crate::metrics::jackknife::difference_error;

/// One candidate (a model or a layer) by one score.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub name: &'a str,
    pub score: f64,
    /// Its scores without each fold in turn.
    pub folds: Option<&'a [f64]>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    /// The best candidate (the first of equal scores).
    pub best: usize,
    /// The jackknife standard error of its score.
    pub se: Option<f64>,
    /// The candidates within noise of the best, the best included, in the given order.
    pub within: Vec<usize>,
    /// The share of leave-one-fold-out rescorings in which the best stays first (when every
    /// candidate has fold scores).
    pub stays_first: Option<f64>,
}

/// How many standard errors of the difference separate two candidates that the run tells
/// apart.
pub const SEPARATION: f64 = 2.0;

pub fn choose(candidates: &[Candidate], margin: f64) -> Option<Choice> {
    let mut best: Option<usize> = None;
    for (i, c) in candidates.iter().enumerate() {
        if best.is_none_or(|b| c.score > candidates[b].score) {
            best = Some(i);
        }
    }
    let best = best?;
    let top = candidates[best];
    let within = candidates
        .iter()
        .enumerate()
        .filter(|(i, c)| {
            *i == best
                || match (top.folds, c.folds) {
                    (Some(a), Some(b)) if a.len() == b.len() => {
                        top.score - c.score <= SEPARATION * difference_error(a, b)
                    }
                    _ => c.score >= top.score - margin,
                }
        })
        .map(|(i, _)| i)
        .collect();
    let se = top.folds.map(crate::metrics::jackknife::standard_error);
    let stays_first = stays_first(candidates, best);
    Some(Choice {
        best,
        se: se.filter(|s| s.is_finite()),
        within,
        stays_first,
    })
}

fn stays_first(candidates: &[Candidate], best: usize) -> Option<f64> {
    let folds: Vec<&[f64]> = candidates.iter().map(|c| c.folds).collect::<Option<_>>()?;
    let k = folds[best].len();
    if k == 0 || folds.iter().any(|f| f.len() != k) {
        return None;
    }
    let first = (0..k)
        .filter(|&fold| {
            let mut winner = 0;
            for (i, f) in folds.iter().enumerate() {
                if f[fold] > folds[winner][fold] {
                    winner = i;
                }
            }
            winner == best
        })
        .count();
    Some(first as f64 / k as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c<'a>(name: &'a str, score: f64, folds: Option<&'a [f64]>) -> Candidate<'a> {
        Candidate { name, score, folds }
    }

    /// a leads b by 0.05; their fold scores move in step (difference error 0): told apart.
    /// a leads c by 0.01 with a difference that swings by 0.1 between folds: not told apart.
    #[test]
    fn within_noise_is_twice_the_paired_standard_error() {
        let a = [0.90, 0.91, 0.89];
        let b = [0.85, 0.86, 0.84];
        let cc = [0.99, 0.80, 0.88];
        let choice = choose(
            &[
                c("a", 0.90, Some(&a)),
                c("b", 0.85, Some(&b)),
                c("c", 0.89, Some(&cc)),
            ],
            0.0,
        )
        .unwrap();
        assert_eq!(choice.best, 0);
        assert_eq!(choice.within, [0, 2]);
        // Fold 0: c (0.99) beats a (0.90); folds 1 and 2: a is first.
        assert_eq!(choice.stays_first, Some(2.0 / 3.0));
        // sqrt(2/3 * ((0.90-0.90)^2 + (0.91-0.90)^2 + (0.89-0.90)^2)) = sqrt(2/3 * 2e-4).
        assert!((choice.se.unwrap() - (2.0f64 / 3.0 * 2e-4).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn without_fold_scores_the_margin_decides() {
        let choice = choose(
            &[c("x", 1.0, None), c("y", 0.95, None), c("z", 0.5, None)],
            0.1,
        )
        .unwrap();
        assert_eq!((choice.best, choice.within.clone()), (0, vec![0, 1]));
        assert_eq!((choice.se, choice.stays_first), (None, None));
        assert!(choose(&[], 0.1).is_none());
    }
}
