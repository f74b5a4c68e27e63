//! Resize-then-centre-crop with the arithmetic of PIL's `Image.resize` (Pillow's Resample.c,
//! which torchvision's `Resize` calls on PIL images), so that on lossless images zoo-select's
//! pixels are bit for bit those of `Resize(resize) + CenterCrop(size)` in a torchvision pipeline.
//!
//! PIL resamples in two separable passes, horizontal then vertical, each an antialiased
//! convolution whose weights are normalised to sum 1 in f64 and rounded to 22-bit fixed point;
//! the horizontal pass is rounded to 8 bits before the vertical one. Only the crop is computed:
//! output column j of the crop is column `left + j` of the full resize, with the weights the full
//! resize would use, and the horizontal pass runs only over the source rows the crop's rows
//! read. Nearest neighbour follows PIL's affine scaling path.

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// A separable filter: its support (radius at scale 1) and its kernel.
#[derive(Debug, Clone, Copy)]
pub enum Kernel {
    Bilinear,
    /// Keys' cubic with a = -0.5 (PIL's BICUBIC).
    Bicubic,
}

impl Kernel {
    fn support(self) -> f64 {
        match self {
            Kernel::Bilinear => 1.0,
            Kernel::Bicubic => 2.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
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

/// Fixed-point weights of the source pixels `start..start + weights.len()` for one output pixel.
struct Taps {
    start: usize,
    weights: Vec<i32>,
}

/// PIL's precompute_coeffs + normalize_coeffs_8bpc for outputs `first..first + count` of a
/// resize from `in_size` to `out_size` pixels.
fn taps(kernel: Kernel, in_size: usize, out_size: usize, first: usize, count: usize) -> Vec<Taps> {
    let scale = in_size as f64 / out_size as f64;
    let filter_scale = scale.max(1.0);
    let support = kernel.support() * filter_scale;
    let inv = 1.0 / filter_scale;
    (first..first + count)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            // PIL truncates with (int)(... + 0.5).
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let raw: Vec<f64> = (xmin..xmax)
                .map(|x| kernel.weight((x as f64 - center + 0.5) * inv))
                .collect();
            let total: f64 = raw.iter().sum();
            let one = (1u32 << PRECISION_BITS) as f64;
            let weights = raw
                .iter()
                .map(|&w| {
                    let w = if total != 0.0 { w / total } else { 0.0 };
                    if w < 0.0 {
                        (-0.5 + w * one) as i32
                    } else {
                        (0.5 + w * one) as i32
                    }
                })
                .collect();
            Taps {
                start: xmin,
                weights,
            }
        })
        .collect()
}

fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// The `size` x `size` centre crop, at (`left`, `top`), of the `out_w` x `out_h` resize of an
/// interleaved RGB image, as row-major RGB bytes.
#[allow(clippy::too_many_arguments)]
pub fn resize_crop(
    kernel: Kernel,
    rgb: &[u8],
    width: usize,
    height: usize,
    out_w: usize,
    out_h: usize,
    left: usize,
    top: usize,
    size: usize,
) -> Vec<u8> {
    let columns = taps(kernel, width, out_w, left, size);
    let rows = taps(kernel, height, out_h, top, size);
    let first_row = rows.first().map_or(0, |t| t.start);
    let last_row = rows.last().map_or(0, |t| t.start + t.weights.len());
    let half = 1i32 << (PRECISION_BITS - 1);

    // Horizontal pass over the source rows the crop reads, rounded to 8 bits as PIL does.
    let band = last_row - first_row;
    let mut temp = vec![0u8; band * size * 3];
    for (r, out_row) in temp.chunks_exact_mut(size * 3).enumerate() {
        let src = &rgb[(first_row + r) * width * 3..(first_row + r + 1) * width * 3];
        for (t, px) in columns.iter().zip(out_row.chunks_exact_mut(3)) {
            let (mut a0, mut a1, mut a2) = (half, half, half);
            let pixels = &src[t.start * 3..(t.start + t.weights.len()) * 3];
            for (&w, p) in t.weights.iter().zip(pixels.chunks_exact(3)) {
                a0 += p[0] as i32 * w;
                a1 += p[1] as i32 * w;
                a2 += p[2] as i32 * w;
            }
            px[0] = clip8(a0);
            px[1] = clip8(a1);
            px[2] = clip8(a2);
        }
    }

    // Vertical pass.
    let stride = size * 3;
    let mut out = vec![0u8; size * stride];
    let mut acc = vec![0i32; stride];
    for (t, out_row) in rows.iter().zip(out.chunks_exact_mut(stride)) {
        acc.fill(half);
        for (k, &w) in t.weights.iter().enumerate() {
            let src =
                &temp[(t.start - first_row + k) * stride..(t.start - first_row + k + 1) * stride];
            for (a, &p) in acc.iter_mut().zip(src) {
                *a += p as i32 * w;
            }
        }
        for (o, &a) in out_row.iter_mut().zip(&acc) {
            *o = clip8(a);
        }
    }
    out
}

/// PIL's nearest neighbour, its ImagingScaleAffine: source coordinates start at scale / 2 and
/// grow by `scale` per output pixel, added up in f64 as PIL does (so a pixel centre that lands
/// on an integer is truncated the same way), and truncated.
#[allow(clippy::too_many_arguments)]
pub fn nearest_crop(
    rgb: &[u8],
    width: usize,
    height: usize,
    out_w: usize,
    out_h: usize,
    left: usize,
    top: usize,
    size: usize,
) -> Vec<u8> {
    let picks = |n_in: usize, n_out: usize, first: usize| -> Vec<usize> {
        let scale = n_in as f64 / n_out as f64;
        let mut at = scale * 0.5;
        let mut out = Vec::with_capacity(size);
        for i in 0..first + size {
            if i >= first {
                out.push((at as usize).min(n_in - 1));
            }
            at += scale;
        }
        out
    };
    let xs = picks(width, out_w, left);
    let mut out = Vec::with_capacity(size * size * 3);
    for y in picks(height, out_h, top) {
        let row = &rgb[y * width * 3..(y + 1) * width * 3];
        for &x in &xs {
            out.extend_from_slice(&row[x * 3..x * 3 + 3]);
        }
    }
    out
}
