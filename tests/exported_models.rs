//! Real exported models (scripts/export_zoo.py, run by scripts/bootstrap): the pooled layer
//! features zoo-select captures equal those PyTorch forward hooks saw on the eager model.

use std::path::{Path, PathBuf};

use tch::{Device, Tensor};
use zoo_select::config::{InputConfig, ModelConfig};
use zoo_select::zoo::ZooModel;

fn zoo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("zoo")
}

fn check(name: &str, layers: &[&str], size: u32) {
    let model = zoo_dir().join(format!("{name}.pt"));
    let check = zoo_dir().join(format!("{name}.check.npz"));
    assert!(
        model.exists() && check.exists(),
        "{} or its .check.npz is missing: run ./scripts/test, which exports the demo zoo first",
        model.display()
    );
    let arrays = Tensor::read_npz(&check).unwrap();
    let get = |k: &str| {
        arrays
            .iter()
            .find(|(n, _)| n == k)
            .unwrap_or_else(|| panic!("{k} not in {}", check.display()))
            .1
            .shallow_clone()
    };
    let cfg = ModelConfig {
        name: name.to_owned(),
        path: model,
        input: InputConfig {
            size,
            resize: None,
            mean: [0.0; 3],
            std: [1.0; 3],
        },
        layers: layers.iter().map(|l| l.to_string()).collect(),
    };
    let zoo_model = ZooModel::load(&cfg, Device::Cpu).unwrap();
    let features = zoo_model.run(&get("input")).unwrap();
    for (layer, got) in layers.iter().zip(&features.layers) {
        let want = get(&format!("layer/{layer}"));
        let scale = want.abs().max().double_value(&[]).max(1e-30);
        let err = (got - &want).abs().max().double_value(&[]) / scale;
        eprintln!(
            "{name} {layer}: dim {}, max abs diff / max abs value {err:e}",
            want.size()[1]
        );
        assert!(err <= 1e-5, "{name} {layer}: relative difference {err:e}");
    }
}

const LITE0_STAGES: [&str; 5] = [
    "_blocks.2",
    "_blocks.4",
    "_blocks.10",
    "_blocks.15",
    "_swish",
];

#[test]
fn efficientnet_lite0_imagenet_taps_equal_forward_hooks() {
    check("efficientnet_lite0", &LITE0_STAGES, 224);
}

#[test]
fn efficientnet_lite0_random_taps_equal_forward_hooks() {
    check("efficientnet_lite0_random", &LITE0_STAGES, 224);
}
