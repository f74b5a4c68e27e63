//! JPEGs decoded by libjpeg-turbo, the decoder inside PIL (Pillow's wheels link it), so that a
//! JPEG's pixels are PIL's to the bit and the whole preprocessing matches a torchvision pipeline
//! on the images most datasets are made of, not only on lossless ones. It is also faster than the
//! `image` crate's decoder (zune-jpeg; docs/performance.md).
//!
//! As PIL: a warning (extraneous bytes before a marker, a corrupt stretch of data) keeps the
//! decoded image, and a JPEG whose data ends early is refused ("image file is truncated"), where
//! the `image` crate would fill the rest in grey. What libjpeg-turbo cannot decode to 8-bit RGB
//! (CMYK, 12-bit, a broken header) goes to the `image` crate, which accepts or refuses it as
//! before. The TurboJPEG 3 API is called directly: the severity of an error (warning or fatal),
//! which decides all this, is not in the safe wrapper crate's errors.
//!
//! Only the rectangle the crops read is decoded (libjpeg-turbo's partial decompression): a
//! centre crop of a resize reads about 60 % of a 4:3 photo. The columns beside it skip their
//! IDCT, upsampling and colour conversion, not their entropy decoding, which cannot skip and is
//! over half the time; the rows below it are not decoded at all, so a truncation there is told
//! by the missing end-of-image marker instead of libjpeg's warning. Progressive JPEGs get a wider
//! margin, and unusual sampling factors a whole decode. The pixels are a full decode's
//! (`a_part_is_the_wholes_pixels`, `odd_layouts_crop_to_the_wholes_pixels`). What it saves is in
//! docs/performance.md ("Where the time went").

use std::cell::RefCell;
use std::ffi::{c_int, CStr};

use turbojpeg_sys as tj;

use super::resample::Rect;

/// Images above this many bytes decoded are left to the `image` crate, whose limits refuse them
/// with their own message (its default allocation limit).
const MAX_BYTES: usize = 512 * 1024 * 1024;

/// libjpeg's warning when the data runs out (JWRN_JPEG_EOF).
const TRUNCATED: &str = "Premature end of JPEG file";

/// What libjpeg-turbo made of a JPEG.
pub enum Decoded {
    /// The buffer now holds this rectangle of the image as 8-bit RGB, row after row: the one
    /// asked for, or a larger one.
    Rgb(Rect),
    /// The data ends before the image does.
    Truncated,
    /// Anything else it does not decode to 8-bit RGB.
    Declined,
}

/// The iMCU width of each TurboJPEG subsampling (`tjMCUWidth` in turbojpeg.h, a static array
/// of the header, not of the library): a decoded rectangle starts on a multiple of it.
const IMCU_WIDTH: [usize; 7] = [8, 16, 16, 8, 8, 32, 8];

/// Columns decoded beyond the wanted ones, where the image goes on. libjpeg-turbo's "fancy"
/// chroma upsampling (4:2:0, 4:2:2) treats a partial row's first and last pixel as the image's
/// edges (libjpeg.txt, jpeg_crop_scanline), so only those may differ from a full decode; rows
/// come out as in a full decode. `a_part_is_the_wholes_pixels` holds this to the bit.
const EDGE: usize = 1;

/// iMCUs decoded left of the wanted columns in a progressive JPEG, beyond `EDGE`. Where its
/// scans leave coefficients unrefined, libjpeg smooths each block with its neighbours two blocks
/// away, and takes a partial row's first two blocks of each component as the image's left edge
/// (jdcoefct.c, decompress_smooth_data): at most two iMCUs, whose last pixel's chroma the fancy
/// upsampling then spreads one column further (`EDGE`). The right side reads real neighbours.
const SMOOTHED_IMCUS: usize = 2;

/// A TurboJPEG decompression instance.
struct Handle(tj::tjhandle);

impl Handle {
    fn new() -> Option<Handle> {
        // SAFETY: tj3Init has no preconditions; a null handle is checked.
        let h = unsafe { tj::tj3Init(tj::TJINIT_TJINIT_DECOMPRESS as c_int) };
        (!h.is_null()).then_some(Handle(h))
    }

    /// Whether the last call's error was a warning (libjpeg went on), not a fatal error.
    fn only_warned(&self) -> bool {
        // SAFETY: the handle is live.
        unsafe { tj::tj3GetErrorCode(self.0) == tj::TJERR_TJERR_WARNING as c_int }
    }

    /// The last call's error message.
    fn message(&self) -> String {
        // SAFETY: the handle is live; tj3GetErrorStr returns a NUL-terminated string it owns.
        unsafe { CStr::from_ptr(tj::tj3GetErrorStr(self.0)) }
            .to_string_lossy()
            .into_owned()
    }

    /// Decodes the rectangle `wanted(width, height)` asks for (or more) into `into`, which
    /// keeps its size between calls: only what grows is cleared.
    fn decode(
        &self,
        bytes: &[u8],
        wanted: impl FnOnce(usize, usize) -> Rect,
        into: &mut Vec<u8>,
    ) -> Decoded {
        // SAFETY: the pointer and length describe `bytes`, which outlives the call.
        let header = unsafe { tj::tj3DecompressHeader(self.0, bytes.as_ptr(), bytes.len() as _) };
        let mut warned = header != 0;
        if warned && !self.only_warned() {
            return Decoded::Declined;
        }
        let [width, height, subsampling, progressive] = [
            tj::TJPARAM_TJPARAM_JPEGWIDTH,
            tj::TJPARAM_TJPARAM_JPEGHEIGHT,
            tj::TJPARAM_TJPARAM_SUBSAMP,
            tj::TJPARAM_TJPARAM_PROGRESSIVE,
        ]
        // SAFETY: the handle is live and has read a header.
        .map(|param| unsafe { tj::tj3Get(self.0, param as c_int) });
        let (Ok(w), Ok(h)) = (usize::try_from(width), usize::try_from(height)) else {
            return Decoded::Declined;
        };
        if w == 0 || h == 0 || w.saturating_mul(h).saturating_mul(3) > MAX_BYTES {
            return Decoded::Declined;
        }
        let whole = Rect::whole(w, h);
        let mut rect = self.crop(wanted(w, h), &whole, subsampling, progressive == 1);
        let mut status = self.decompress(bytes, &rect, into);
        if status != 0 && !self.only_warned() && rect != whole {
            // TurboJPEG's iMCU width comes from the subsampling it names, which for unusual
            // sampling factors (every component 2x1: "4:4:4") is not the file's: the crop is
            // refused, and the whole image is decoded instead.
            rect = self.crop(whole.clone(), &whole, subsampling, false);
            status = self.decompress(bytes, &rect, into);
        }
        if status != 0 {
            if !self.only_warned() {
                return Decoded::Declined;
            }
            warned = true;
        }
        // libjpeg keeps only the first warning's text, so the end of the data is also looked
        // for: a truncation after another warning still counts. Rows below a cropped rectangle
        // are not decoded at all (libjpeg skips to the end without reading), so there the end
        // is looked for whether or not libjpeg warned.
        let looked = warned || rect.rows.end < h;
        if (warned && self.message().contains(TRUNCATED)) || (looked && !ends_after_its_scan(bytes))
        {
            return Decoded::Truncated;
        }
        Decoded::Rgb(rect)
    }

    /// tj3Decompress8 of the rectangle the cropping region was set for into `into`, grown to
    /// hold it; its status.
    fn decompress(&self, bytes: &[u8], rect: &Rect, into: &mut Vec<u8>) -> c_int {
        let len = rect.cols.len() * rect.rows.len() * 3;
        if into.len() < len {
            into.resize(len, 0);
        }
        // SAFETY: `into` holds at least the rectangle's rows of `cols * 3` bytes (below
        // MAX_BYTES, so the pitch fits a c_int), the RGB pixels libjpeg-turbo writes for the
        // header it has read and the cropping region set for `rect`.
        unsafe {
            tj::tj3Decompress8(
                self.0,
                bytes.as_ptr(),
                bytes.len() as _,
                into.as_mut_ptr(),
                (rect.cols.len() * 3) as c_int,
                tj::TJPF_TJPF_RGB as c_int,
            )
        }
    }

    /// Sets the instance's cropping region for `wanted` of the image `whole` and returns the
    /// rectangle it will decode: `wanted` widened by `EDGE` (and, progressive, by the reach of
    /// block smoothing) and moved left to an iMCU boundary, or the whole image where
    /// libjpeg-turbo cannot crop.
    fn crop(&self, wanted: Rect, whole: &Rect, subsampling: c_int, progressive: bool) -> Rect {
        let region = |r: &Rect| tj::tjregion {
            x: r.cols.start as c_int,
            y: r.rows.start as c_int,
            w: r.cols.len() as c_int,
            h: r.rows.len() as c_int,
        };
        let imcu = usize::try_from(subsampling)
            .ok()
            .and_then(|s| IMCU_WIDTH.get(s).copied());
        let sane = whole.contains(&wanted) && !wanted.cols.is_empty() && !wanted.rows.is_empty();
        if let Some(imcu) = imcu.filter(|_| sane) {
            let reach = EDGE
                + if progressive {
                    SMOOTHED_IMCUS * imcu
                } else {
                    0
                };
            let left = wanted.cols.start.saturating_sub(reach) / imcu * imcu;
            let rect = Rect {
                cols: left..(wanted.cols.end + EDGE).min(whole.cols.end),
                rows: wanted.rows.clone(),
            };
            // SAFETY: the handle is live and has read the header the region lies in.
            if rect != *whole && unsafe { tj::tj3SetCroppingRegion(self.0, region(&rect)) } == 0 {
                return rect;
            }
        }
        let uncropped = tj::tjregion {
            x: 0,
            y: 0,
            w: 0,
            h: 0,
        };
        // SAFETY: the handle is live; an all-zero region (TJUNCROPPED) always succeeds.
        unsafe { tj::tj3SetCroppingRegion(self.0, uncropped) };
        whole.clone()
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: the handle came from tj3Init and is destroyed once.
        unsafe { tj::tj3Destroy(self.0) }
    }
}

thread_local! {
    /// One instance per decoding thread: setting one up allocates libjpeg's state.
    static HANDLE: RefCell<Option<Handle>> = const { RefCell::new(None) };
}

/// Whether `bytes` start as a JPEG (SOI marker, then another marker).
pub fn is_jpeg(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0xff, 0xd8, 0xff])
}

/// Whether an end-of-image marker (FF D9) follows the first start-of-scan (FF DA). Coded data
/// holds no FF D9 (a data byte FF is followed by 00, a restart marker by D0-D7), and one before
/// the scan may be an embedded thumbnail's, so this is the main image's end. Both are looked for
/// from the nearer end of the file, where they lie: this runs for most images.
fn ends_after_its_scan(bytes: &[u8]) -> bool {
    let marker = |m: u8| move |w: &[u8]| w[0] == 0xff && w[1] == m;
    let scan = bytes.windows(2).position(marker(0xda));
    let end = bytes.windows(2).rposition(marker(0xd9));
    matches!((scan, end), (Some(scan), Some(end)) if end > scan)
}

/// The rectangle `wanted(width, height)` of the JPEG (or a larger one: the rectangle returned)
/// as 8-bit RGB, grey replicated, into `into`.
pub fn decode(
    bytes: &[u8],
    wanted: impl FnOnce(usize, usize) -> Rect,
    into: &mut Vec<u8>,
) -> Decoded {
    HANDLE.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Handle::new();
        }
        slot.as_ref()
            .map_or(Decoded::Declined, |h| h.decode(bytes, wanted, into))
    })
}

#[cfg(test)]
mod tests {
    use super::super::xorshift;
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jpeg");
        std::fs::read(dir.join(name)).unwrap()
    }

    /// The whole image's RGB bytes, or what else became of it.
    fn whole(bytes: &[u8]) -> Result<Vec<u8>, &'static str> {
        let mut pixels = Vec::new();
        match decode(bytes, Rect::whole, &mut pixels) {
            Decoded::Rgb(rect) => Ok(pixels[..rect.cols.len() * rect.rows.len() * 3].to_vec()),
            Decoded::Truncated => Err("truncated"),
            Decoded::Declined => Err("declined"),
        }
    }

    #[test]
    fn truncated_is_refused_and_cmyk_declined() {
        let all = fixture("420.jpg");
        whole(&all).unwrap();
        assert_eq!(whole(&fixture("cmyk.jpg")), Err("declined"));
        // As PIL: cut in the scan, or only the end-of-image marker missing; or in the header.
        for cut in [all.len() / 2, all.len() - 2, 3] {
            assert_eq!(whole(&all[..cut]), Err("truncated"), "{cut}");
        }
    }

    #[test]
    fn a_warning_keeps_the_pixels_as_pil_does() {
        // Extraneous bytes before the end-of-image marker: libjpeg warns, PIL decodes.
        let all = fixture("420.jpg");
        let n = all.len();
        let mut extra = all[..n - 2].to_vec();
        extra.extend_from_slice(&[0, 0, 0xff, 0xd9]);
        assert_eq!(whole(&extra).unwrap(), whole(&all).unwrap());
        // A warning first (extraneous bytes before the scan), then the data cut short: libjpeg
        // reports only the first, and the file is still refused as truncated (as PIL does).
        let scan = all.windows(2).position(|w| w == [0xff, 0xda]).unwrap();
        let mut both = all[..n / 2].to_vec();
        both.splice(scan..scan, [0u8, 0]);
        assert_eq!(whole(&both), Err("truncated"));
    }

    #[test]
    fn the_end_is_looked_for_after_the_scan_only() {
        // A thumbnail's end marker before the scan does not count.
        assert!(!ends_after_its_scan(&[
            0xff, 0xd8, 0xff, 0xd9, 0xff, 0xda, 1, 2
        ]));
        assert!(ends_after_its_scan(&[
            0xff, 0xd8, 0xff, 0xda, 1, 2, 0xff, 0xd9
        ]));
        assert!(!ends_after_its_scan(&[0xff, 0xd8, 0xff, 0xd9]));
    }

    #[test]
    fn a_refusal_leaves_the_threads_decompressor_as_it_was() {
        let all = fixture("420.jpg");
        let before = whole(&all).unwrap();
        for bad in [&all[..all.len() / 2], &fixture("cmyk.jpg")[..], &all[..40]] {
            assert!(whole(bad).is_err());
            assert_eq!(whole(&all).unwrap(), before);
        }
    }

    /// Decodes `wanted` of the JPEG: the rectangle decoded and its pixels.
    fn part(bytes: &[u8], wanted: &Rect) -> Result<(Rect, Vec<u8>), &'static str> {
        let mut pixels = vec![0x5au8; 3];
        match decode(bytes, |_, _| wanted.clone(), &mut pixels) {
            Decoded::Rgb(rect) => Ok((rect, pixels)),
            Decoded::Truncated => Err("truncated"),
            Decoded::Declined => Err("declined"),
        }
    }

    /// Whether `wanted` of `got` (the rectangle `rect` of an image `w` wide) is `all`'s.
    fn same_part(got: &(Rect, Vec<u8>), wanted: &Rect, all: &[u8], w: usize) -> bool {
        let (rect, pixels) = got;
        let stride = rect.cols.len() * 3;
        let n = wanted.cols.len() * 3;
        rect.contains(wanted)
            && wanted.rows.clone().all(|y| {
                let at = (y - rect.rows.start) * stride + (wanted.cols.start - rect.cols.start) * 3;
                let from = (y * w + wanted.cols.start) * 3;
                pixels[at..at + n] == all[from..from + n]
            })
    }

    /// Decodes `n` random rectangles of `jpeg` (`w` x `h`) and asserts each is `all`'s, the
    /// whole decode; how many were decoded cropped rather than whole.
    fn parts_match(
        jpeg: &[u8],
        all: &[u8],
        (w, h): (usize, usize),
        n: usize,
        next: &mut impl FnMut() -> u64,
        label: &str,
    ) -> usize {
        let mut cropped = 0;
        for _ in 0..n {
            let wanted = random_rect(next, w, h);
            let got = part(jpeg, &wanted).unwrap();
            assert!(
                same_part(&got, &wanted, all, w),
                "{label}: {wanted:?}, decoded {:?}",
                got.0
            );
            cropped += (got.0 != Rect::whole(w, h)) as usize;
        }
        cropped
    }

    #[test]
    fn a_truncation_below_the_rectangle_is_refused() {
        // libjpeg does not read the rows below a cropped rectangle, so it cannot warn there.
        let all = fixture("photo.jpg");
        let top = Rect {
            cols: 100..300,
            rows: 0..200,
        };
        assert!(part(&all, &top).is_ok());
        for cut in [all.len() - 2, all.len() * 95 / 100, all.len() * 3 / 4] {
            assert_eq!(part(&all[..cut], &top).err(), Some("truncated"), "{cut}");
        }
    }

    /// Files TurboJPEG's encoder cannot make (tests/oracles/make_fixtures.py, with cjpeg): every
    /// component sampled 2x1, whose iMCU is wider than TurboJPEG's "4:4:4" says (the crop is
    /// refused, and the whole decoded), baseline and progressive; and a progressive JPEG whose
    /// scans leave coefficients unrefined, which libjpeg decodes with block smoothing.
    #[test]
    fn odd_layouts_crop_to_the_wholes_pixels() {
        let mut next = xorshift(0xbb67ae8584caa73b);
        for name in [
            "sampled-2x1.jpg",
            "sampled-2x1-progressive.jpg",
            "unrefined.jpg",
        ] {
            let jpeg = fixture(name);
            let all = whole(&jpeg).unwrap();
            let (w, h) = (301, 203);
            assert_eq!(all.len(), w * h * 3, "{name}");
            let cropped = parts_match(&jpeg, &all, (w, h), 200, &mut next, name);
            // About half the left edges of the 2x1 files fall on a true iMCU boundary.
            assert!(cropped > 60, "{name}: {cropped} of 200 cropped");
        }
    }

    /// A JPEG of `rgb` (`w` x `h`) made by libjpeg-turbo's own encoder.
    fn encode(rgb: &[u8], w: usize, h: usize, params: &[(tj::TJPARAM, c_int)]) -> Vec<u8> {
        // SAFETY: a compressor used on `rgb`, which holds `h` rows of `w` RGB pixels; the
        // buffer it returns is copied, then freed with tj3Free.
        unsafe {
            let handle = tj::tj3Init(tj::TJINIT_TJINIT_COMPRESS as c_int);
            assert!(!handle.is_null());
            for &(param, value) in params {
                assert_eq!(tj::tj3Set(handle, param as c_int, value), 0);
            }
            let (mut buf, mut size) = (std::ptr::null_mut(), 0);
            let status = tj::tj3Compress8(
                handle,
                rgb.as_ptr(),
                w as c_int,
                0,
                h as c_int,
                tj::TJPF_TJPF_RGB as c_int,
                &mut buf,
                &mut size,
            );
            assert_eq!(status, 0);
            let out = std::slice::from_raw_parts(buf, size as usize).to_vec();
            tj::tj3Free(buf.cast());
            tj::tj3Destroy(handle);
            out
        }
    }

    /// A random rectangle of a `w` x `h` image.
    fn random_rect(next: &mut impl FnMut() -> u64, w: usize, h: usize) -> Rect {
        let mut n = || next() as usize;
        let (x0, y0) = (n() % w, n() % h);
        Rect {
            cols: x0..x0 + 1 + n() % (w - x0),
            rows: y0..y0 + 1 + n() % (h - y0),
        }
    }

    /// What decoding only the crops' rectangle rests on: the rectangle asked for comes out as
    /// in a full decode, to the bit, for every subsampling, baseline and progressive, with and
    /// without restart markers, anywhere in the image.
    #[test]
    fn a_part_is_the_wholes_pixels() {
        let mut next = xorshift(0x6a09e667f3bcc909);
        let mut cropped = 0;
        for case in 0..280 {
            let (w, h) = (1 + next() as usize % 300, 1 + next() as usize % 220);
            // Colour gradients with noise: chroma that varies, so upsampling shows.
            let rgb: Vec<u8> = (0..w * h)
                .flat_map(|i| {
                    let (x, y) = (i % w, i / w);
                    let n = next() as usize;
                    [
                        (x * 255 / w) as u8 ^ (n & 31) as u8,
                        (y * 255 / h) as u8,
                        (n >> 8) as u8,
                    ]
                })
                .collect();
            let subsampling = (case % 7) as c_int;
            let mut params = vec![
                (tj::TJPARAM_TJPARAM_SUBSAMP, subsampling),
                (tj::TJPARAM_TJPARAM_QUALITY, 60 + (next() % 40) as c_int),
            ];
            if case % 3 == 1 {
                params.push((tj::TJPARAM_TJPARAM_PROGRESSIVE, 1));
            }
            if case % 5 == 2 {
                params.push((tj::TJPARAM_TJPARAM_RESTARTROWS, 1));
            }
            let jpeg = encode(&rgb, w, h, &params);
            let all = whole(&jpeg).unwrap();
            let label = format!("case {case} ({w}x{h}, subsampling {subsampling}, {params:?})");
            cropped += parts_match(&jpeg, &all, (w, h), 4, &mut next, &label);
        }
        // Most rectangles are cropped, not decoded whole.
        assert!(cropped > 800, "{cropped} of 1,120 cropped");
    }
}
