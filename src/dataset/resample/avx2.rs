//! PIL's horizontal pass with AVX2, to the bit. The horizontal pass reads each output pixel's
//! taps from three interleaved channels, which the compiler cannot vectorise; it was most of the
//! time of fitting an image, and a large part of decoding (docs/performance.md).
//!
//! Each output pixel's window is read as groups of four source pixels (12 bytes, loaded as 16),
//! spread into 16-bit lanes as (r0 r1 g0 g1 b0 b1 0 0 | r2 r3 g2 g3 b2 b3 0 0) and multiplied
//! pairwise with `vpmaddwd`. PIL's 22-bit weights do not fit 16 bits, so each is split into
//! `high * 2^11 + low` with `low` in 0..2^11: two multiplies whose sums, put back together as
//! `(high_sum << 11) + low_sum`, are the same integer as PIL's, so nothing is rounded apart.

use std::arch::x86_64::*;

use super::kernel::Taps;

/// Source pixels per group: one 16-byte load covers their 12 bytes.
const GROUP: usize = 4;

/// The taps of every output column, padded with zero weights to whole groups.
struct Windows {
    groups: usize,
    /// Per column: the byte offset of its window in a row.
    starts: Vec<usize>,
    /// Per column and group: the high and the low parts of the weights as 16-bit pairs.
    weights: Vec<[__m256i; 2]>,
}

impl Windows {
    /// None when a window would be wider than the row.
    #[target_feature(enable = "avx2")]
    fn new(columns: &Taps, width: usize) -> Option<Windows> {
        let widest = columns.widest();
        let groups = widest.div_ceil(GROUP).max(1);
        let taps = groups * GROUP;
        if width < taps {
            return None;
        }
        let mut starts = Vec::with_capacity(columns.len());
        let mut weights = Vec::with_capacity(columns.len() * groups);
        let mut w = vec![0i32; taps];
        for t in columns.iter() {
            starts.push(t.window(width, &mut w) * 3);
            for g in w.chunks_exact(GROUP) {
                let high: [i16; GROUP] = std::array::from_fn(|k| (g[k] >> 11) as i16);
                let low: [i16; GROUP] = std::array::from_fn(|k| (g[k] & 0x7ff) as i16);
                weights.push([lanes(high), lanes(low)]);
            }
        }
        Some(Windows {
            groups,
            starts,
            weights,
        })
    }
}

/// (w0 w1 w0 w1 w0 w1 0 0 | w2 w3 w2 w3 w2 w3 0 0) as 16-bit lanes, matching `SPREAD`.
#[target_feature(enable = "avx2")]
fn lanes(w: [i16; GROUP]) -> __m256i {
    let [a, b, c, d] = w;
    _mm256_setr_epi16(a, b, a, b, a, b, 0, 0, c, d, c, d, c, d, 0, 0)
}

/// Byte shuffle that spreads 12 bytes of four RGB pixels (the same 16 in both halves) into
/// 16-bit lanes: pixels 0 and 1 in the low half, 2 and 3 in the high half, channels paired.
#[target_feature(enable = "avx2")]
fn spread() -> __m256i {
    const Z: i8 = -128;
    _mm256_setr_epi8(
        0, Z, 3, Z, 1, Z, 4, Z, 2, Z, 5, Z, Z, Z, Z, Z, //
        6, Z, 9, Z, 7, Z, 10, Z, 8, Z, 11, Z, Z, Z, Z, Z,
    )
}

/// The horizontal pass over `rows` (source rows of `width` RGB pixels) into `temp` (rows of
/// `size` pixels), rounded to 8 bits as PIL does. False, with nothing done, when a window is
/// wider than the row.
#[target_feature(enable = "avx2")]
pub(super) fn horizontal(
    columns: &Taps,
    width: usize,
    rows: &[u8],
    temp: &mut [u8],
    size: usize,
    half: i32,
) -> bool {
    let Some(windows) = Windows::new(columns, width) else {
        return false;
    };
    let row_bytes = width * 3;
    // The last group's 16-byte load reads 4 bytes past its window: a row with nothing after it
    // in `rows` is copied into a padded buffer first.
    let mut padded = vec![0u8; row_bytes + 16];
    for (i, out_row) in temp.chunks_exact_mut(size * 3).enumerate() {
        let at = i * row_bytes;
        let src = if at + row_bytes + 16 <= rows.len() {
            &rows[at..]
        } else {
            padded[..row_bytes].copy_from_slice(&rows[at..at + row_bytes]);
            &padded[..]
        };
        row(&windows, src, out_row, half);
    }
    true
}

/// One row: `src` holds the row and at least 16 bytes more.
#[target_feature(enable = "avx2")]
fn row(windows: &Windows, src: &[u8], out: &mut [u8], half: i32) {
    let spread = spread();
    let half = _mm_set1_epi32(half);
    let groups = windows.groups;
    for (j, (&start, weights)) in windows
        .starts
        .iter()
        .zip(windows.weights.chunks_exact(groups))
        .enumerate()
    {
        let mut high = _mm256_setzero_si256();
        let mut low = _mm256_setzero_si256();
        for (g, [wh, wl]) in weights.iter().enumerate() {
            let bytes = &src[start + 12 * g..start + 12 * g + 16];
            // SAFETY: `bytes` is 16 readable bytes; the load has no alignment requirement.
            let v = unsafe { _mm_loadu_si128(bytes.as_ptr().cast()) };
            let v = _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(v), spread);
            high = _mm256_add_epi32(high, _mm256_madd_epi16(v, *wh));
            low = _mm256_add_epi32(low, _mm256_madd_epi16(v, *wl));
        }
        let sum = _mm256_add_epi32(_mm256_slli_epi32::<11>(high), low);
        let rgb = _mm_add_epi32(
            _mm256_castsi256_si128(sum),
            _mm256_extracti128_si256::<1>(sum),
        );
        let shifted = _mm_srai_epi32::<22>(_mm_add_epi32(rgb, half));
        // Saturating packs clamp to 0..=255, as PIL's clip8.
        let words = _mm_packs_epi32(shifted, shifted);
        let packed = _mm_packus_epi16(words, words);
        let px = (_mm_cvtsi128_si32(packed) as u32).to_le_bytes();
        // Byte by byte: a 3-byte slice copy became a call to memmove.
        let o = &mut out[3 * j..3 * j + 3];
        o[0] = px[0];
        o[1] = px[1];
        o[2] = px[2];
    }
}
