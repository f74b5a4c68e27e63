//! zoo-select's preprocessing against torchvision's Resize + CenterCrop on PIL images
//! (tests/oracles/make_fixtures.py), on a lossless photo so decoding plays no part.

use std::path::Path;

use tch::Tensor;
use zoo_select::config::Interpolation;
use zoo_select::dataset::{decode, fit, load, Geometry};

#[test]
fn fit_equals_torchvision_resize_and_center_crop() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/resize");
    let image = decode(&std::fs::read(dir.join("photo.png")).unwrap()).unwrap();
    let expected = Tensor::read_npz(dir.join("expected.npz")).unwrap();
    assert_eq!(expected.len(), 4);
    for (key, want) in expected {
        let parts: Vec<&str> = key.split('_').collect();
        let filter = match parts[2] {
            "bilinear" => Interpolation::Bilinear,
            "bicubic" => Interpolation::Bicubic,
            _ => Interpolation::Nearest,
        };
        let g = Geometry {
            resize: parts[0].parse().unwrap(),
            size: parts[1].parse().unwrap(),
            filter,
        };
        let got = fit(&image, g);
        let want = Vec::<u8>::try_from(want.flatten(0, -1)).unwrap();
        assert_eq!(got.len(), want.len(), "{key}");
        let diffs: Vec<i32> = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (*a as i32 - *b as i32).abs())
            .collect();
        let max = diffs.iter().max().copied().unwrap_or(0);
        let off = diffs.iter().filter(|&&d| d > 0).count();
        eprintln!(
            "{key}: max abs diff {max}, {off} of {} values differ",
            want.len()
        );
        assert_eq!(max, 0, "{key}: {off} values differ, by up to {max}");
    }
}

/// Max abs difference and count of differing values between two byte buffers of equal length.
fn difference(got: &[u8], want: &[u8]) -> (i32, usize) {
    assert_eq!(got.len(), want.len());
    let diffs = got
        .iter()
        .zip(want)
        .map(|(a, b)| (*a as i32 - *b as i32).abs());
    diffs.fold((0, 0), |(max, n), d| (max.max(d), n + (d > 0) as usize))
}

#[test]
fn jpegs_decode_to_pils_pixels() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jpeg");
    let expected = Tensor::read_npz(dir.join("expected.npz")).unwrap();
    let mut decoded = 0;
    for (key, want) in &expected {
        let Some(name) = key.strip_prefix("decoded_") else {
            continue;
        };
        let image = decode(&std::fs::read(dir.join(format!("{name}.jpg"))).unwrap()).unwrap();
        assert_eq!(
            [image.height() as i64, image.width() as i64, 3],
            want.size()[..],
            "{name}"
        );
        let want = Vec::<u8>::try_from(want.flatten(0, -1)).unwrap();
        let (max, off) = difference(image.as_raw(), &want);
        assert_eq!(
            max, 0,
            "{name}: {off} values differ from PIL's, by up to {max}"
        );
        decoded += 1;
    }
    // 4:2:0, 4:2:2, 4:4:4, progressive, grey; and, made by cjpeg, every component sampled 2x1
    // (baseline and progressive) and a progressive JPEG with unrefined scans.
    assert_eq!(decoded, 8);
}

#[test]
fn a_jpeg_photo_fits_as_torchvision_does() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jpeg");
    let expected = Tensor::read_npz(dir.join("expected.npz")).unwrap();
    let (_, want) = expected
        .iter()
        .find(|(k, _)| k == "fitted_photo_256_224")
        .unwrap();
    let image = decode(&std::fs::read(dir.join("photo.jpg")).unwrap()).unwrap();
    let g = Geometry {
        resize: 256,
        size: 224,
        filter: Interpolation::Bilinear,
    };
    let got = fit(&image, g);
    let want = Vec::<u8>::try_from(want.flatten(0, -1)).unwrap();
    let (max, off) = difference(&got, &want);
    assert_eq!(
        max, 0,
        "{off} values differ from torchvision's, by up to {max}"
    );
    // The pass's own path, which decodes only the rectangle the crop reads.
    let loaded = load(&dir.join("photo.jpg"), &[g]).unwrap();
    let (max, off) = difference(&loaded[0], &want);
    assert_eq!(
        max, 0,
        "through load: {off} values differ from torchvision's, by up to {max}"
    );
}

#[test]
fn a_truncated_jpeg_is_refused_and_a_cmyk_one_decoded() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jpeg");
    // CMYK: libjpeg-turbo has no conversion to RGB; the `image` crate has one.
    let cmyk = decode(&std::fs::read(dir.join("cmyk.jpg")).unwrap()).unwrap();
    assert_eq!(cmyk.dimensions(), (64, 48));
    // Cut short: refused, as PIL refuses it, where the `image` crate would fill it in grey.
    let bytes = std::fs::read(dir.join("420.jpg")).unwrap();
    let err = decode(&bytes[..bytes.len() / 2]).unwrap_err();
    assert_eq!(err, "corrupt or truncated image: the JPEG data ends early");
}
