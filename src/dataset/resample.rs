//! Resize-then-centre-crop with the arithmetic of PIL's `Image.resize` (Pillow's Resample.c,
//! which torchvision's `Resize` calls on PIL images), so that zoo-select's pixels are bit for bit
//! those of `Resize(resize) + CenterCrop(size)` in a torchvision pipeline wherever the decoded
//! image is PIL's (lossless formats, and JPEGs through jpeg.rs).
//!
//! PIL resamples in two separable passes, horizontal then vertical, each an antialiased
//! convolution whose weights are normalised to sum 1 in f64 and rounded to 22-bit fixed point;
//! the horizontal pass is rounded to 8 bits before the vertical one. Only the crop is computed:
//! output column j of the crop is column `left + j` of the full resize, with the weights the full
//! resize would use, and the horizontal pass runs only over the source rows the crop's rows
//! read. Nearest neighbour follows PIL's affine scaling path.

#[cfg(target_arch = "x86_64")]
mod avx2;

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

impl Taps {
    /// Fills `w` (zeros beyond the taps) with the weights of a window of `w.len()` pixels and
    /// returns its first pixel: the taps' own, moved left where the window would pass the row's
    /// end (`width`, at least `w.len()`). Integer sums, so the zeros change no bit.
    fn window(&self, width: usize, w: &mut [i32]) -> usize {
        let start = self.start.min(width - w.len());
        w.fill(0);
        w[self.start - start..self.start - start + self.weights.len()]
            .copy_from_slice(&self.weights);
        start
    }
}

#[inline(always)]
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Where a crop lies in a resize: the resize's width and height, and the crop's corner and side.
#[derive(Debug, Clone, Copy)]
pub struct Crop {
    pub out_w: usize,
    pub out_h: usize,
    pub left: usize,
    pub top: usize,
    pub size: usize,
}

/// The `crop` of the resize of a `width` x `height` interleaved RGB image, as row-major RGB
/// bytes.
pub fn resize_crop(kernel: Kernel, rgb: &[u8], width: usize, height: usize, crop: Crop) -> Vec<u8> {
    // The same integer arithmetic, compiled for AVX2 where the CPU has it: the build targets
    // plain x86-64, whose SSE2 has no 32-bit multiply across lanes.
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { resize_crop_avx2(kernel, rgb, width, height, crop) };
    }
    resize_crop_any(kernel, rgb, width, height, crop, no_simd)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn resize_crop_avx2(
    kernel: Kernel,
    rgb: &[u8],
    width: usize,
    height: usize,
    crop: Crop,
) -> Vec<u8> {
    // The closure inherits this function's AVX2, which the caller checked.
    resize_crop_any(kernel, rgb, width, height, crop, |c, w, r, t, s, h| {
        avx2::horizontal(c, w, r, t, s, h)
    })
}

/// A horizontal pass that does nothing (false): where there is no vectorised one.
fn no_simd(_: &[Taps], _: usize, _: &[u8], _: &mut [u8], _: usize, _: i32) -> bool {
    false
}

/// `simd` is a vectorised horizontal pass, tried first: false when it did nothing.
#[inline(always)]
fn resize_crop_any(
    kernel: Kernel,
    rgb: &[u8],
    width: usize,
    height: usize,
    crop: Crop,
    simd: impl FnOnce(&[Taps], usize, &[u8], &mut [u8], usize, i32) -> bool,
) -> Vec<u8> {
    let Crop {
        out_w,
        out_h,
        left,
        top,
        size,
    } = crop;
    let columns = taps(kernel, width, out_w, left, size);
    let rows = taps(kernel, height, out_h, top, size);
    let first_row = rows.first().map_or(0, |t| t.start);
    let last_row = rows.last().map_or(0, |t| t.start + t.weights.len());
    let half = 1i32 << (PRECISION_BITS - 1);

    // Horizontal pass over the source rows the crop reads, rounded to 8 bits as PIL does.
    let band = last_row - first_row;
    let mut temp = vec![0u8; band * size * 3];
    let rows_in = &rgb[first_row * width * 3..last_row * width * 3];
    let widest = columns.iter().map(|t| t.weights.len()).max().unwrap_or(0);
    let done = simd(&columns, width, rows_in, &mut temp, size, half)
        || match widest {
            0..=4 => horizontal_fixed::<4, 12>(&columns, width, rows_in, &mut temp, size, half),
            5..=6 => horizontal_fixed::<6, 18>(&columns, width, rows_in, &mut temp, size, half),
            7..=8 => horizontal_fixed::<8, 24>(&columns, width, rows_in, &mut temp, size, half),
            _ => false,
        };
    if !done {
        horizontal(&columns, width, rows_in, &mut temp, size, half);
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

/// The horizontal pass, any number of taps, over `rows` (the band's source rows, `width`
/// pixels each).
#[inline(always)]
fn horizontal(
    columns: &[Taps],
    width: usize,
    rows: &[u8],
    temp: &mut [u8],
    size: usize,
    half: i32,
) {
    for (src, out_row) in rows
        .chunks_exact(width * 3)
        .zip(temp.chunks_exact_mut(size * 3))
    {
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
}

/// The horizontal pass with every column's taps padded with zero weights to `K`, so that the
/// compiler unrolls the taps: a quarter of the decoding time went to the variable-length loop.
/// Integer sums, so the zeros change no bit. False (nothing done) for rows shorter than `K`.
/// `K3` is 3 `K`, the window's bytes.
#[inline(always)]
fn horizontal_fixed<const K: usize, const K3: usize>(
    columns: &[Taps],
    width: usize,
    rows: &[u8],
    temp: &mut [u8],
    size: usize,
    half: i32,
) -> bool {
    if width < K || K3 != 3 * K {
        return false;
    }
    // Each column's window of K pixels, moved left where it would pass the row's end.
    let padded: Vec<(usize, [i32; K])> = columns
        .iter()
        .map(|t| {
            let mut w = [0i32; K];
            (t.window(width, &mut w) * 3, w)
        })
        .collect();
    for (src, out_row) in rows
        .chunks_exact(width * 3)
        .zip(temp.chunks_exact_mut(size * 3))
    {
        for ((start, w), px) in padded.iter().zip(out_row.chunks_exact_mut(3)) {
            let pixels: &[u8; K3] = match src[*start..*start + K3].try_into() {
                Ok(p) => p,
                Err(_) => return false,
            };
            let (mut a0, mut a1, mut a2) = (half, half, half);
            for k in 0..K {
                a0 += pixels[3 * k] as i32 * w[k];
                a1 += pixels[3 * k + 1] as i32 * w[k];
                a2 += pixels[3 * k + 2] as i32 * w[k];
            }
            px[0] = clip8(a0);
            px[1] = clip8(a1);
            px[2] = clip8(a2);
        }
    }
    true
}

/// PIL's nearest neighbour, its ImagingScaleAffine: source coordinates start at scale / 2 and
/// grow by `scale` per output pixel, added up in f64 as PIL does (so a pixel centre that lands
/// on an integer is truncated the same way), and truncated.
pub fn nearest_crop(rgb: &[u8], width: usize, height: usize, crop: Crop) -> Vec<u8> {
    let Crop {
        out_w,
        out_h,
        left,
        top,
        size,
    } = crop;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The generic loop, without the fixed-width windows or AVX2: the reference.
    fn reference(kernel: Kernel, rgb: &[u8], w: usize, h: usize, crop: Crop) -> Vec<u8> {
        let Crop {
            out_w,
            out_h,
            left,
            top,
            size,
        } = crop;
        let columns = taps(kernel, w, out_w, left, size);
        let rows = taps(kernel, h, out_h, top, size);
        let first = rows.first().map_or(0, |t| t.start);
        let last = rows.last().map_or(0, |t| t.start + t.weights.len());
        let half = 1i32 << (PRECISION_BITS - 1);
        let mut temp = vec![0u8; (last - first) * size * 3];
        horizontal(
            &columns,
            w,
            &rgb[first * w * 3..last * w * 3],
            &mut temp,
            size,
            half,
        );
        let stride = size * 3;
        let mut out = vec![0u8; size * stride];
        for (t, row) in rows.iter().zip(out.chunks_exact_mut(stride)) {
            for (i, o) in row.iter_mut().enumerate() {
                let mut a = half;
                for (k, &wt) in t.weights.iter().enumerate() {
                    a += temp[(t.start - first + k) * stride + i] as i32 * wt;
                }
                *o = clip8(a);
            }
        }
        out
    }

    /// A seeded xorshift64 generator: random test images without a dependency.
    fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        }
    }

    /// The AVX2 horizontal pass on its own against the scalar one, where the CPU has AVX2 (the
    /// test below goes through the dispatch, which falls back to scalar code without it).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_avx2_horizontal_pass_gives_the_scalar_passs_bytes() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            eprintln!("no AVX2 on this CPU: nothing to compare");
            return;
        }
        let mut next = xorshift(0x2545f4914f6cdd1du64);
        let half = 1i32 << (PRECISION_BITS - 1);
        let mut ran = 0;
        for &(width, out_w) in &[
            (500, 341),
            (640, 224),
            (1024, 200),
            (100, 256),
            (9, 5),
            (37, 19),
        ] {
            for kernel in [Kernel::Bilinear, Kernel::Bicubic] {
                let size = out_w.min(224);
                let columns = taps(kernel, width, out_w, (out_w - size) / 2, size);
                // Three rows, so that the last one is read from the padded copy.
                let rows: Vec<u8> = (0..width * 3 * 3).map(|_| next() as u8).collect();
                let mut want = vec![0u8; 3 * size * 3];
                horizontal(&columns, width, &rows, &mut want, size, half);
                let mut got = vec![0u8; 3 * size * 3];
                // SAFETY: the CPU has AVX2, checked above.
                if unsafe { avx2::horizontal(&columns, width, &rows, &mut got, size, half) } {
                    assert_eq!(got, want, "{width} -> {out_w}, {kernel:?}");
                    ran += 1;
                }
            }
        }
        // Every case has rows at least as wide as its windows.
        assert_eq!(ran, 12, "the AVX2 pass declined some cases");
    }

    #[test]
    fn every_path_gives_the_generic_loops_bytes() {
        let mut next = xorshift(0x9e3779b97f4a7c15u64);
        // Down- and upscales, from 1 to 12 taps, narrow images (wider windows than the row).
        for &(w, h, short) in &[
            (500, 375, 256),
            (500, 375, 232),
            (64, 48, 40),
            (37, 23, 12),
            (7, 5, 3),
            (3, 9, 12),
            (2, 2, 2),
            (400, 300, 60),
            (640, 427, 224),
            (1024, 683, 256),
            (100, 80, 256),
            (9, 301, 5),
        ] {
            let rgb: Vec<u8> = (0..w * h * 3).map(|_| next() as u8).collect();
            let (out_w, out_h) = if w < h {
                (short, short * h / w)
            } else {
                (short * w / h, short)
            };
            let size = short.min(out_w).min(out_h);
            let (left, top) = ((out_w - size) / 2, (out_h - size) / 2);
            for kernel in [Kernel::Bilinear, Kernel::Bicubic] {
                let crop = Crop {
                    out_w,
                    out_h,
                    left,
                    top,
                    size,
                };
                let got = resize_crop(kernel, &rgb, w, h, crop);
                assert_eq!(
                    got,
                    reference(kernel, &rgb, w, h, crop),
                    "{w}x{h} -> {short}"
                );
                let any = resize_crop_any(kernel, &rgb, w, h, crop, no_simd);
                assert_eq!(any, got, "{w}x{h} -> {short}, without AVX2");
            }
        }
    }
}
