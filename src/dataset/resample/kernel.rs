//! The filter kernels and their fixed-point weight tables, as PIL computes them
//! (precompute_coeffs, normalize_coeffs_8bpc): what both the portable passes and the AVX2 one
//! read.

use std::ops::Range;

pub(super) const PRECISION_BITS: u32 = 32 - 8 - 2;

/// A separable filter: its support (radius at scale 1) and its kernel.
#[derive(Debug, Clone, Copy)]
pub enum Kernel {
    Bilinear,
    /// Keys' cubic with a = -0.5 (PIL's BICUBIC).
    Bicubic,
}

impl Kernel {
    pub(super) fn support(self) -> f64 {
        match self {
            Kernel::Bilinear => 1.0,
            Kernel::Bicubic => 2.0,
        }
    }

    pub(super) fn weight(self, x: f64) -> f64 {
        let x = x.abs();
        match self {
            Kernel::Bilinear => {
                if x < 1.0 {
                    1.0 - x
                } else {
                    0.0
                }
            }
            Kernel::Bicubic => {
                const A: f64 = -0.5;
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
        }
    }
}

/// Fixed-point weights of every output pixel of one axis, in one table as PIL keeps them: output
/// `i` reads source pixels `starts[i]..starts[i] + lens[i]` with the first `lens[i]` of its
/// `ksize` weights. Two vectors per output pixel were 900 allocations for a 224 px crop, on a
/// heap that a GPU machine's decoding threads share (allocator.rs).
pub(super) struct Taps {
    pub(super) ksize: usize,
    pub(super) starts: Vec<usize>,
    pub(super) lens: Vec<usize>,
    pub(super) weights: Vec<i32>,
}

/// One output pixel's taps: the weights of source pixels `start..start + weights.len()`.
#[derive(Clone, Copy)]
pub(super) struct Tap<'a> {
    pub(super) start: usize,
    pub(super) weights: &'a [i32],
}

/// PIL's precompute_coeffs + normalize_coeffs_8bpc for outputs `first..first + count` of a
/// resize from `in_size` to `out_size` pixels.
pub(super) fn taps(
    kernel: Kernel,
    in_size: usize,
    out_size: usize,
    first: usize,
    count: usize,
) -> Taps {
    let scale = in_size as f64 / out_size as f64;
    let filter_scale = scale.max(1.0);
    let support = kernel.support() * filter_scale;
    let inv = 1.0 / filter_scale;
    // PIL's bound on a pixel's taps: xmax - xmin <= 2 support + 1.
    let ksize = support.ceil() as usize * 2 + 1;
    let mut out = Taps {
        ksize,
        starts: Vec::with_capacity(count),
        lens: Vec::with_capacity(count),
        weights: vec![0; count * ksize],
    };
    let mut raw = Vec::with_capacity(ksize);
    let one = (1u32 << PRECISION_BITS) as f64;
    for (xx, weights) in (first..first + count).zip(out.weights.chunks_exact_mut(ksize)) {
        let center = (xx as f64 + 0.5) * scale;
        // PIL truncates with (int)(... + 0.5).
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        raw.clear();
        raw.extend((xmin..xmax).map(|x| kernel.weight((x as f64 - center + 0.5) * inv)));
        assert!(
            raw.len() <= ksize,
            "{} taps against PIL's bound {ksize}",
            raw.len()
        );
        let total: f64 = raw.iter().sum();
        for (o, &w) in weights.iter_mut().zip(&raw) {
            let w = if total != 0.0 { w / total } else { 0.0 };
            *o = if w < 0.0 {
                (-0.5 + w * one) as i32
            } else {
                (0.5 + w * one) as i32
            };
        }
        out.starts.push(xmin);
        out.lens.push(raw.len());
    }
    out
}

impl Taps {
    pub(super) fn len(&self) -> usize {
        self.starts.len()
    }

    pub(super) fn iter(&self) -> impl DoubleEndedIterator<Item = Tap<'_>> + '_ {
        let weights = self.weights.chunks_exact(self.ksize);
        (self.starts.iter().zip(&self.lens).zip(weights)).map(|((&start, &len), w)| Tap {
            start,
            weights: &w[..len],
        })
    }

    /// The source pixels they read: taps move right with their output pixel, so the first
    /// starts first and the last ends last.
    pub(super) fn span(&self) -> Range<usize> {
        match (self.iter().next(), self.iter().next_back()) {
            (Some(a), Some(b)) => a.start..b.start + b.weights.len(),
            _ => 0..0,
        }
    }

    /// The most taps of any output pixel.
    pub(super) fn widest(&self) -> usize {
        self.lens.iter().copied().max().unwrap_or(0)
    }

    /// Counted from source pixel `origin` instead of 0.
    pub(super) fn shift(&mut self, origin: usize) {
        self.starts.iter_mut().for_each(|s| *s -= origin);
    }
}
