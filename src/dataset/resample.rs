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
//! read. Nearest neighbour follows PIL's affine scaling path. A `Resample` is planned from the
//! image's size alone and says which pixels it reads, so the decoder can decode only those.

#[cfg(target_arch = "x86_64")]
mod avx2;
mod kernel;

pub use kernel::Kernel;
use kernel::{taps, Tap, Taps, PRECISION_BITS};

use std::ops::Range;

impl Tap<'_> {
    /// Fills `w` (zeros beyond the taps) with the weights of a window of `w.len()` pixels and
    /// returns its first pixel: the taps' own, moved left where the window would pass the row's
    /// end (`width`, at least `w.len()`). Integer sums, so the zeros change no bit.
    fn window(&self, width: usize, w: &mut [i32]) -> usize {
        let start = self.start.min(width - w.len());
        w.fill(0);
        w[self.start - start..self.start - start + self.weights.len()]
            .copy_from_slice(self.weights);
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

/// How a resample computes its pixels.
#[derive(Debug, Clone, Copy)]
pub enum Method {
    Filter(Kernel),
    Nearest,
}

/// A rectangle of an image: the columns `cols` of the rows `rows`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rect {
    pub cols: Range<usize>,
    pub rows: Range<usize>,
}

impl Rect {
    pub fn whole(width: usize, height: usize) -> Rect {
        Rect {
            cols: 0..width,
            rows: 0..height,
        }
    }

    /// The smallest rectangle that holds both.
    pub fn union(&self, other: &Rect) -> Rect {
        Rect {
            cols: self.cols.start.min(other.cols.start)..self.cols.end.max(other.cols.end),
            rows: self.rows.start.min(other.rows.start)..self.rows.end.max(other.rows.end),
        }
    }

    pub fn contains(&self, other: &Rect) -> bool {
        self.cols.start <= other.cols.start
            && other.cols.end <= self.cols.end
            && self.rows.start <= other.rows.start
            && other.rows.end <= self.rows.end
    }
}

/// Interleaved RGB bytes of the rectangle `rect` of an image, row after row.
pub struct Pixels<'a> {
    pub rgb: &'a [u8],
    pub rect: Rect,
}

/// The crop of a resize of one image, planned from the image's size alone: which of its pixels
/// it reads (so that a decoder may decode only those), then computed from any rectangle that
/// holds them.
pub struct Resample {
    size: usize,
    how: How,
}

enum How {
    /// The resize keeps the size: PIL copies the image, so the crop is cut out of it.
    Cut {
        left: usize,
        top: usize,
    },
    /// The source column and row of each output column and row.
    Nearest {
        xs: Vec<usize>,
        ys: Vec<usize>,
    },
    Filter {
        columns: Taps,
        rows: Taps,
    },
}

impl Resample {
    /// The `crop` of a resize of a `width` x `height` image.
    pub fn new(method: Method, width: usize, height: usize, crop: Crop) -> Resample {
        let Crop {
            out_w,
            out_h,
            left,
            top,
            size,
        } = crop;
        let how = if (out_w, out_h) == (width, height) {
            How::Cut { left, top }
        } else {
            match method {
                Method::Nearest => How::Nearest {
                    xs: nearest_picks(width, out_w, left, size),
                    ys: nearest_picks(height, out_h, top, size),
                },
                Method::Filter(kernel) => How::Filter {
                    columns: taps(kernel, width, out_w, left, size),
                    rows: taps(kernel, height, out_h, top, size),
                },
            }
        };
        Resample { size, how }
    }

    /// The source pixels it reads.
    pub fn reads(&self) -> Rect {
        let picks = |p: &[usize]| match (p.first(), p.last()) {
            (Some(a), Some(b)) => *a..*b + 1,
            _ => 0..0,
        };
        match &self.how {
            How::Cut { left, top } => Rect {
                cols: *left..left + self.size,
                rows: *top..top + self.size,
            },
            How::Nearest { xs, ys } => Rect {
                cols: picks(xs),
                rows: picks(ys),
            },
            How::Filter { columns, rows } => Rect {
                cols: columns.span(),
                rows: rows.span(),
            },
        }
    }

    /// Writes the crop, row-major `size` x `size` x 3 bytes, into `out` from `src`, which holds
    /// at least `self.reads()`. `band` is working memory, kept by the caller from one image to
    /// the next.
    pub fn run(self, src: &Pixels, out: &mut [u8], band: &mut Vec<u8>) {
        // Cheap beside the resample, and a short rectangle would otherwise shift rows silently.
        assert!(
            src.rect.contains(&self.reads()),
            "the decoded rectangle {:?} lacks what the resample reads, {:?}",
            src.rect,
            self.reads()
        );
        let (x0, y0) = (src.rect.cols.start, src.rect.rows.start);
        let width = src.rect.cols.len();
        let row = width * 3;
        let size = self.size;
        match self.how {
            How::Cut { left, top } => {
                for (y, o) in out.chunks_exact_mut(size * 3).enumerate() {
                    let at = (top - y0 + y) * row + (left - x0) * 3;
                    o.copy_from_slice(&src.rgb[at..at + size * 3]);
                }
            }
            How::Nearest { xs, ys } => {
                for (&y, o) in ys.iter().zip(out.chunks_exact_mut(size * 3)) {
                    let line = &src.rgb[(y - y0) * row..(y - y0 + 1) * row];
                    for (&x, px) in xs.iter().zip(o.chunks_exact_mut(3)) {
                        px.copy_from_slice(&line[(x - x0) * 3..(x - x0) * 3 + 3]);
                    }
                }
            }
            How::Filter {
                mut columns,
                mut rows,
            } => {
                // The taps, counted from the rectangle's corner instead of the image's.
                columns.shift(x0);
                rows.shift(y0);
                filter_crop(&columns, &rows, src.rgb, width, size, out, band);
            }
        }
    }
}

/// The filtered crop, its horizontal pass compiled for AVX2 where the CPU has it: the build
/// targets plain x86-64, whose SSE2 has no 32-bit multiply across lanes.
fn filter_crop(
    columns: &Taps,
    rows: &Taps,
    rgb: &[u8],
    width: usize,
    size: usize,
    out: &mut [u8],
    band: &mut Vec<u8>,
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { filter_crop_avx2(columns, rows, rgb, width, size, out, band) };
    }
    filter_crop_any(columns, rows, rgb, width, size, out, band, no_simd)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn filter_crop_avx2(
    columns: &Taps,
    rows: &Taps,
    rgb: &[u8],
    width: usize,
    size: usize,
    out: &mut [u8],
    band: &mut Vec<u8>,
) {
    // The closure inherits this function's AVX2, which the caller checked.
    filter_crop_any(
        columns,
        rows,
        rgb,
        width,
        size,
        out,
        band,
        |c, w, r, t, s, h| avx2::horizontal(c, w, r, t, s, h),
    )
}

/// A horizontal pass that does nothing (false): where there is no vectorised one.
fn no_simd(_: &Taps, _: usize, _: &[u8], _: &mut [u8], _: usize, _: i32) -> bool {
    false
}

/// `columns` and `rows` count from the corner of `rgb`, rows of `width` pixels. `simd` is a
/// vectorised horizontal pass, tried first: false when it did nothing.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn filter_crop_any(
    columns: &Taps,
    rows: &Taps,
    rgb: &[u8],
    width: usize,
    size: usize,
    out: &mut [u8],
    band: &mut Vec<u8>,
    simd: impl FnOnce(&Taps, usize, &[u8], &mut [u8], usize, i32) -> bool,
) {
    let Range {
        start: first_row,
        end: last_row,
    } = rows.span();
    let half = 1i32 << (PRECISION_BITS - 1);

    // Horizontal pass over the source rows the crop reads, rounded to 8 bits as PIL does. Every
    // byte of the band is written before it is read: a kept band needs no clearing.
    let band_len = (last_row - first_row) * size * 3;
    if band.len() < band_len {
        band.resize(band_len, 0);
    }
    let temp = &mut band[..band_len];
    let rows_in = &rgb[first_row * width * 3..last_row * width * 3];
    let widest = columns.widest();
    let done = simd(columns, width, rows_in, temp, size, half)
        || match widest {
            0..=4 => horizontal_fixed::<4, 12>(columns, width, rows_in, temp, size, half),
            5..=6 => horizontal_fixed::<6, 18>(columns, width, rows_in, temp, size, half),
            7..=8 => horizontal_fixed::<8, 24>(columns, width, rows_in, temp, size, half),
            _ => false,
        };
    if !done {
        horizontal(columns, width, rows_in, temp, size, half);
    }

    // Vertical pass.
    let stride = size * 3;
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
}

/// The horizontal pass, any number of taps, over `rows` (the band's source rows, `width`
/// pixels each).
#[inline(always)]
fn horizontal(columns: &Taps, width: usize, rows: &[u8], temp: &mut [u8], size: usize, half: i32) {
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
    columns: &Taps,
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
/// on an integer is truncated the same way), and truncated. The source pixels of outputs
/// `first..first + count` of a resize from `n_in` to `n_out` pixels.
fn nearest_picks(n_in: usize, n_out: usize, first: usize, count: usize) -> Vec<usize> {
    let scale = n_in as f64 / n_out as f64;
    let mut at = scale * 0.5;
    let mut out = Vec::with_capacity(count);
    for i in 0..first + count {
        if i >= first {
            out.push((at as usize).min(n_in - 1));
        }
        at += scale;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::xorshift;
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
        let Range {
            start: first,
            end: last,
        } = rows.span();
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
        // Down- and upscales, from 1 to 120 taps, narrow images (wider windows than the row).
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
            // A 30x downscale: 60 and 120 taps, one under PIL's bound on them.
            (3000, 300, 10),
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
                let got = resampled(Method::Filter(kernel), &rgb, w, h, crop);
                assert_eq!(
                    got,
                    reference(kernel, &rgb, w, h, crop),
                    "{w}x{h} -> {short}"
                );
                let columns = taps(kernel, w, out_w, left, size);
                let rows = taps(kernel, h, out_h, top, size);
                let mut any = vec![0u8; size * size * 3];
                let band = &mut Vec::new();
                filter_crop_any(&columns, &rows, &rgb, w, size, &mut any, band, no_simd);
                assert_eq!(any, got, "{w}x{h} -> {short}, without AVX2");
            }
        }
    }

    /// Through the plan, on the whole image.
    fn resampled(method: Method, rgb: &[u8], w: usize, h: usize, crop: Crop) -> Vec<u8> {
        let mut out = vec![0u8; crop.size * crop.size * 3];
        let src = Pixels {
            rgb,
            rect: Rect::whole(w, h),
        };
        Resample::new(method, w, h, crop).run(&src, &mut out, &mut Vec::new());
        out
    }

    /// What a decoder that decodes only part of an image relies on: any rectangle that holds
    /// what the plan reads gives the whole image's bytes, through a band kept dirty from before.
    #[test]
    fn a_rectangle_holding_what_it_reads_gives_the_whole_images_bytes() {
        let mut next = xorshift(0x853c49e6748fea9bu64);
        let mut checked = 0;
        for &(w, h, resize, size) in &[
            (500, 375, 256, 224),
            (375, 500, 232, 224),
            (640, 427, 256, 224),
            (64, 48, 40, 32),
            (37, 23, 12, 12),
            (100, 80, 256, 224),
            (9, 301, 5, 5),
            (300, 200, 200, 160),
            (330, 250, 250, 250),
        ] {
            let rgb: Vec<u8> = (0..w * h * 3).map(|_| next() as u8).collect();
            let (out_w, out_h) = if w < h {
                (resize, resize * h / w)
            } else {
                (resize * w / h, resize)
            };
            let crop = Crop {
                out_w,
                out_h,
                left: (out_w - size) / 2,
                top: (out_h - size) / 2,
                size,
            };
            for method in [
                Method::Filter(Kernel::Bilinear),
                Method::Filter(Kernel::Bicubic),
                Method::Nearest,
            ] {
                let whole = resampled(method, &rgb, w, h, crop);
                let reads = Resample::new(method, w, h, crop).reads();
                assert!(Rect::whole(w, h).contains(&reads));
                // What it reads, then that with a random margin.
                for margin in [0, 1 + next() as usize % 9] {
                    let rect = Rect {
                        cols: reads.cols.start.saturating_sub(margin)
                            ..(reads.cols.end + margin).min(w),
                        rows: reads.rows.start.saturating_sub(margin)
                            ..(reads.rows.end + margin).min(h),
                    };
                    let part: Vec<u8> = rect
                        .rows
                        .clone()
                        .flat_map(|y| {
                            &rgb[(y * w + rect.cols.start) * 3..(y * w + rect.cols.end) * 3]
                        })
                        .copied()
                        .collect();
                    let mut band = vec![0xa5u8; 3 * w * h];
                    let mut out = vec![0u8; size * size * 3];
                    let src = Pixels { rgb: &part, rect };
                    Resample::new(method, w, h, crop).run(&src, &mut out, &mut band);
                    assert_eq!(
                        out, whole,
                        "{w}x{h} -> {resize}/{size}, {method:?}, margin {margin}"
                    );
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 9 * 3 * 2);
    }
}
