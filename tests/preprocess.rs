//! zoo-select's preprocessing against torchvision's Resize + CenterCrop on PIL images
//! (scripts/make_fixtures.py), on a lossless photo so decoding plays no part.

use std::path::Path;

use tch::Tensor;
use zoo_select::config::Interpolation;
use zoo_select::dataset::{decode, fit, Geometry};

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
        let got = fit(&image, g).unwrap();
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
