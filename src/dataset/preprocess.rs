//! Decoding and geometry, on the CPU: decode, convert to RGB (grey replicated, alpha dropped),
//! resize the shorter side to `resize` (bilinear unless the model asks for bicubic or nearest),
//! centre-crop `size` x `size`. The result stays 8-bit RGB, height x width x 3; scaling to
//! [0, 1] and normalising happen on the device, per model.
//!
//! The arithmetic is torchvision's `Resize(resize)` + `CenterCrop(size)` on a PIL image: the
//! longer side becomes `floor(resize * long / short)`, the crop offset is `round((side - size) /
//! 2)` with ties to even, as Python's `round`, and the resampling is PIL's to the bit
//! (resample.rs), computed for the crop only; of a JPEG, only the rectangle the crops read is
//! decoded (jpeg.rs). An image whose shorter side already equals `resize` is not resampled at
//! all, so a `size` x `size` image with no `resize` passes through untouched. Each decoding
//! thread keeps its buffers from one image to the next.

use std::cell::RefCell;
use std::io::{Cursor, Read};
use std::path::Path;

use image::{ImageError, ImageReader, RgbImage};

use super::jpeg;
use super::resample::{Crop, Kernel, Method, Pixels, Rect, Resample};
use crate::config::{InputConfig, Interpolation};

/// The input geometry of a model: the models of a zoo that share it share one preprocessed image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Geometry {
    pub size: u32,
    pub resize: u32,
    pub filter: Interpolation,
}

impl Geometry {
    /// How this geometry cuts a `width` x `height` image.
    fn resample(&self, width: usize, height: usize) -> Resample {
        let (out_w, out_h) = resized_dims(width as u32, height as u32, self.resize);
        let crop = Crop {
            out_w: out_w as usize,
            out_h: out_h as usize,
            left: crop_offset(out_w, self.size) as usize,
            top: crop_offset(out_h, self.size) as usize,
            size: self.size as usize,
        };
        let method = match self.filter {
            Interpolation::Bilinear => Method::Filter(Kernel::Bilinear),
            Interpolation::Bicubic => Method::Filter(Kernel::Bicubic),
            Interpolation::Nearest => Method::Nearest,
        };
        Resample::new(method, width, height, crop)
    }

    pub fn of(input: &InputConfig) -> Geometry {
        Geometry {
            size: input.size,
            resize: input.resize_or_size(),
            filter: input.interpolation,
        }
    }

    pub fn bytes(&self) -> usize {
        self.size as usize * self.size as usize * 3
    }

    /// The distinct geometries of `inputs`, in order of first use: each image is fitted once per
    /// geometry, whatever the number of models that share it.
    pub fn distinct<'a>(inputs: impl IntoIterator<Item = &'a InputConfig>) -> Vec<Geometry> {
        let mut out: Vec<Geometry> = Vec::new();
        for input in inputs {
            let g = Geometry::of(input);
            if !out.contains(&g) {
                out.push(g);
            }
        }
        out
    }
}

/// Decodes the file at `path` once and fits it to each geometry, into fresh buffers. The error
/// is the reason to show in the report's `skipped` list.
pub fn load(path: &Path, geometries: &[Geometry]) -> Result<Vec<Vec<u8>>, String> {
    let mut images: Vec<Vec<u8>> = geometries.iter().map(|g| vec![0u8; g.bytes()]).collect();
    let mut slots: Vec<&mut [u8]> = images.iter_mut().map(|v| &mut v[..]).collect();
    load_into(path, geometries, &mut slots)?;
    Ok(images)
}

/// Decodes the file at `path` once and fits it to each geometry, writing geometry i's
/// `g.bytes()` into `out[i]`. Of a JPEG, only the part the crops read is decoded. The error is
/// the reason to show in the report's `skipped` list.
pub fn load_into(
    path: &Path,
    geometries: &[Geometry],
    out: &mut [&mut [u8]],
) -> Result<(), String> {
    SCRATCH.with(|cell| {
        let scratch = &mut *cell.borrow_mut();
        let result = scratch.read(path).and_then(|()| {
            let Scratch { file, pixels, band } = scratch;
            fit_into(file, geometries, out, pixels, band)
        });
        scratch.settle();
        result
    })
}

/// A decoding thread's buffers, kept from one image to the next: the file's bytes, the decoded
/// pixels, the resample's band. Allocating and clearing them for every image cost their page
/// faults and memsets, and, on a GPU machine's many decoding threads, turns on the one heap the
/// process keeps (allocator.rs).
#[derive(Default)]
struct Scratch {
    file: Vec<u8>,
    pixels: Vec<u8>,
    band: Vec<u8>,
}

/// Buffers above this are let go after their image: one huge image does not keep its memory on
/// every decoding thread.
const KEEP: usize = 16 << 20;

impl Scratch {
    fn read(&mut self, path: &Path) -> Result<(), String> {
        self.file.clear();
        std::fs::File::open(path)
            .and_then(|mut f| f.read_to_end(&mut self.file))
            .map(|_| ())
            .map_err(|e| format!("cannot read: {e}"))
    }

    fn settle(&mut self) {
        for buffer in [&mut self.file, &mut self.pixels, &mut self.band] {
            if buffer.capacity() > KEEP {
                *buffer = Vec::new();
            }
        }
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// `fit` for every geometry, from the file's bytes; a JPEG decoded only where the crops read.
fn fit_into(
    bytes: &[u8],
    geometries: &[Geometry],
    out: &mut [&mut [u8]],
    pixels: &mut Vec<u8>,
    band: &mut Vec<u8>,
) -> Result<(), String> {
    let mut plans = Vec::new();
    if jpeg::is_jpeg(bytes) {
        let wanted = |width, height| {
            plans = geometries
                .iter()
                .map(|g| g.resample(width, height))
                .collect();
            plans
                .iter()
                .map(Resample::reads)
                .reduce(|a, b| a.union(&b))
                .unwrap_or_else(|| Rect::whole(width, height))
        };
        match jpeg::decode(bytes, wanted, pixels) {
            jpeg::Decoded::Rgb(rect) => {
                let len = rect.cols.len() * rect.rows.len() * 3;
                let src = Pixels {
                    rgb: &pixels[..len],
                    rect,
                };
                for (plan, o) in plans.into_iter().zip(out.iter_mut()) {
                    plan.run(&src, o, band);
                }
                return Ok(());
            }
            jpeg::Decoded::Truncated => return Err(TRUNCATED_JPEG.to_owned()),
            jpeg::Decoded::Declined => {}
        }
    }
    let image = decode_other(bytes)?;
    let (width, height) = (image.width() as usize, image.height() as usize);
    let src = Pixels {
        rgb: image.as_raw(),
        rect: Rect::whole(width, height),
    };
    for (g, o) in geometries.iter().zip(out.iter_mut()) {
        g.resample(width, height).run(&src, o, band);
    }
    Ok(())
}

const TRUNCATED_JPEG: &str = "corrupt or truncated image: the JPEG data ends early";

/// Any format the `image` crate reads, as 8-bit RGB; JPEGs with libjpeg-turbo where it can.
pub fn decode(bytes: &[u8]) -> Result<RgbImage, String> {
    if jpeg::is_jpeg(bytes) {
        let mut pixels = Vec::new();
        let whole = |width, height| Rect::whole(width, height);
        match jpeg::decode(bytes, whole, &mut pixels) {
            jpeg::Decoded::Rgb(rect) => {
                let (w, h) = (rect.cols.len() as u32, rect.rows.len() as u32);
                pixels.truncate(rect.cols.len() * rect.rows.len() * 3);
                if let Some(image) = RgbImage::from_raw(w, h, pixels) {
                    return Ok(image);
                }
            }
            jpeg::Decoded::Truncated => return Err(TRUNCATED_JPEG.to_owned()),
            jpeg::Decoded::Declined => {}
        }
    }
    decode_other(bytes)
}

/// The `image` crate's decoders: every format but the JPEGs libjpeg-turbo decodes.
fn decode_other(bytes: &[u8]) -> Result<RgbImage, String> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| format!("cannot read: {e}"))?;
    if reader.format().is_none() {
        return Err("not an image (unrecognised format)".to_owned());
    }
    let image = reader.decode().map_err(|e| match e {
        ImageError::Unsupported(_) => format!("unsupported image: {e}"),
        ImageError::Limits(_) => format!("too large to decode: {e}"),
        _ => format!("corrupt or truncated image: {e}"),
    })?;
    if image.width() == 0 || image.height() == 0 {
        return Err("empty image (zero width or height)".to_owned());
    }
    Ok(image.into_rgb8())
}

/// Resize the shorter side to `g.resize`, then centre-crop `g.size`; row-major H x W x 3 bytes.
pub fn fit(image: &RgbImage, g: Geometry) -> Vec<u8> {
    let (width, height) = (image.width() as usize, image.height() as usize);
    let mut out = vec![0u8; g.bytes()];
    let src = Pixels {
        rgb: image.as_raw(),
        rect: Rect::whole(width, height),
    };
    g.resample(width, height)
        .run(&src, &mut out, &mut Vec::new());
    out
}

fn resized_dims(w: u32, h: u32, short: u32) -> (u32, u32) {
    let long_of =
        |long: u32, shortest: u32| ((short as u64 * long as u64) / shortest as u64).max(1) as u32;
    if w <= h {
        (short, long_of(h, w))
    } else {
        (long_of(w, h), short)
    }
}

fn crop_offset(side: u32, size: u32) -> u32 {
    ((side as f64 - size as f64) / 2.0)
        .round_ties_even()
        .max(0.0) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayImage, Luma, Rgb};

    #[test]
    fn models_that_share_a_geometry_share_one() {
        let input = |size, resize| InputConfig {
            size,
            resize,
            interpolation: Interpolation::Bilinear,
            mean: [0.5; 3],
            std: [0.25; 3],
        };
        let mut other_norm = input(224, Some(256));
        other_norm.mean = [0.1; 3];
        let inputs = [
            input(224, Some(256)),
            input(112, None),
            other_norm,
            input(224, None),
        ];
        let sizes: Vec<(u32, u32)> = Geometry::distinct(&inputs)
            .iter()
            .map(|g| (g.size, g.resize))
            .collect();
        assert_eq!(sizes, [(224, 256), (112, 112), (224, 224)]);
    }

    #[test]
    fn torchvision_arithmetic() {
        assert_eq!(resized_dims(500, 375, 256), (341, 256));
        assert_eq!(resized_dims(375, 500, 256), (256, 341));
        assert_eq!(resized_dims(28, 28, 224), (224, 224));
        assert_eq!(crop_offset(341, 224), 58); // 58.5 -> 58, ties to even
        assert_eq!(crop_offset(33, 32), 0); // 0.5 -> 0
        assert_eq!(crop_offset(35, 32), 2); // 1.5 -> 2
    }

    #[test]
    fn exact_size_images_are_not_resampled() {
        let img = RgbImage::from_fn(4, 4, |x, y| Rgb([(x * 40 + y) as u8, (y * 50) as u8, 7]));
        let out = fit(
            &img,
            Geometry {
                size: 4,
                resize: 4,
                filter: Interpolation::Bilinear,
            },
        );
        assert_eq!(out, img.as_raw().clone());
    }

    #[test]
    fn shorter_side_then_centre_crop() {
        // 8 x 4: left half 10, right half 200; resize 4 keeps it, the crop takes columns 2..6.
        let img = RgbImage::from_fn(8, 4, |x, _| {
            if x < 4 {
                Rgb([10, 10, 10])
            } else {
                Rgb([200, 200, 200])
            }
        });
        let out = fit(
            &img,
            Geometry {
                size: 4,
                resize: 4,
                filter: Interpolation::Bilinear,
            },
        );
        assert_eq!(out.len(), 4 * 4 * 3);
        let first_row: Vec<u8> = out[..12].iter().step_by(3).copied().collect();
        assert_eq!(first_row, [10, 10, 200, 200]);
        // A constant image stays constant through a real resample.
        let flat = RgbImage::from_pixel(30, 20, Rgb([9, 99, 199]));
        for filter in [
            Interpolation::Bilinear,
            Interpolation::Bicubic,
            Interpolation::Nearest,
        ] {
            let out = fit(
                &flat,
                Geometry {
                    size: 8,
                    resize: 10,
                    filter,
                },
            );
            assert!(out.chunks(3).all(|p| p == [9, 99, 199]), "{filter:?}");
        }
    }

    #[test]
    fn absurd_aspect_ratios_cost_only_the_crop() {
        // Resizing the whole strip would make 256 x 76,800,000 pixels; only the crop is made.
        let strip = RgbImage::from_pixel(1, 300_000, Rgb([1, 2, 3]));
        let out = fit(
            &strip,
            Geometry {
                size: 224,
                resize: 256,
                filter: Interpolation::Bilinear,
            },
        );
        assert_eq!(out.len(), 224 * 224 * 3);
        assert!(out.chunks(3).all(|p| p == [1, 2, 3]));
    }

    #[test]
    fn grey_is_replicated_and_garbage_is_refused() {
        let grey = GrayImage::from_pixel(3, 3, Luma([77]));
        let mut png = Vec::new();
        grey.write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let rgb = decode(&png).unwrap();
        assert!(rgb.pixels().all(|p| p.0 == [77, 77, 77]));
        assert_eq!(
            decode(b"hello, not an image").unwrap_err(),
            "not an image (unrecognised format)"
        );
        let err = decode(&png[..png.len() / 2]).unwrap_err();
        assert!(err.starts_with("corrupt or truncated image"), "{err}");
    }
}
