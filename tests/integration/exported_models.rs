//! Real exported models (scripts/export_zoo.py; scripts/bootstrap exports the demo zoo and
//! scripts/test the test zoo): for every manifest in zoo/, the pooled stage features zoo-select
//! captures equal those PyTorch forward hooks saw on the eager model, and `zoo-select layers`
//! shows the stages with the right shapes.

use crate::common;

use std::path::{Path, PathBuf};

use serde_json::Value;
use tch::{Device, Tensor};
use zoo_select::config::Precision;
use zoo_select::zoo::{Manifest, ModelSpec, ZooModel};

/// What scripts/test exports: torchvision (random, scripted), timm (random), EfficientNet-Lite0
/// (ImageNet weights, traced) and its random twin.
const EXPECTED: [&str; 4] = [
    "resnet18_random",
    "convnext_atto_random",
    "efficientnet_lite0",
    "efficientnet_lite0_random",
];

/// zoo/, or another folder of exports named by ZOO_SELECT_TEST_ZOO (to check a larger zoo).
fn zoo_dir() -> PathBuf {
    match std::env::var_os("ZOO_SELECT_TEST_ZOO") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("zoo"),
    }
}

fn manifest(name: &str) -> (PathBuf, Manifest) {
    let path = zoo_dir().join(format!("{name}.yaml"));
    assert!(
        path.exists(),
        "{} is missing: run ./scripts/test, which exports the test zoo first",
        path.display()
    );
    let m = Manifest::load(&path).unwrap_or_else(|e| panic!("{e}"));
    (path, m)
}

#[test]
fn stage_taps_equal_forward_hooks_for_every_exported_model() {
    let mut manifests: Vec<PathBuf> = std::fs::read_dir(zoo_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    manifests.sort();
    if std::env::var_os("ZOO_SELECT_TEST_ZOO").is_none() {
        for name in EXPECTED {
            assert!(
                manifests.contains(&zoo_dir().join(format!("{name}.yaml"))),
                "{name}.yaml missing: run ./scripts/test"
            );
        }
    }
    for path in manifests {
        let m = Manifest::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let check = zoo_dir().join(format!("{}.check.npz", m.name));
        let arrays =
            Tensor::read_npz(&check).unwrap_or_else(|e| panic!("{}: {e}", check.display()));
        let get = |k: &str| {
            arrays
                .iter()
                .find(|(n, _)| n == k)
                .unwrap_or_else(|| panic!("{k} not in {}", check.display()))
                .1
                .shallow_clone()
        };
        let spec = ModelSpec {
            name: m.name.clone(),
            path: m.file.clone(),
            manifest: Some(path.clone()),
            input: m.input,
            layout: m.layout,
            layers: m.layers.clone(),
            head: m.head.clone(),
            pretrained: m.pretrained,
            sha256: Some(m.sha256.clone()),
        };
        let model = ZooModel::load(&spec, Device::Cpu, false, Precision::F32).unwrap();
        // The check input is already normalised: it goes straight into the network.
        let features = model.run(&get("input")).unwrap();
        for (layer, got) in m.layers.iter().zip(&features.layers) {
            let want = get(&format!("layer/{layer}"));
            let scale = want.abs().max().double_value(&[]).max(1e-30);
            let err = (got - &want).abs().max().double_value(&[]) / scale;
            eprintln!(
                "{} {layer}: dim {}, max abs diff / max abs value {err:e}",
                m.name,
                want.size()[1]
            );
            assert!(
                err <= 1e-5,
                "{} {layer}: relative difference {err:e}",
                m.name
            );
        }
    }
}

fn layers_json(manifest: &Path) -> Vec<Value> {
    common::zoo_select_stdout(&["layers", manifest.to_str().unwrap(), "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// (stage name, its output shape for one image) of a model.
type Stages<'a> = &'a [(&'a str, [i64; 4])];

#[test]
fn layers_command_shows_the_stages_and_their_shapes() {
    let cases: [(&str, Stages); 4] = [
        (
            "resnet18_random",
            &[
                ("relu", [1, 64, 112, 112]),
                ("layer1", [1, 64, 56, 56]),
                ("layer4", [1, 512, 7, 7]),
            ],
        ),
        (
            "convnext_atto_random",
            &[("stages.0", [1, 40, 56, 56]), ("stages.3", [1, 320, 7, 7])],
        ),
        (
            "efficientnet_lite0",
            &[
                ("_blocks.2", [1, 24, 56, 56]),
                ("_blocks.15", [1, 320, 7, 7]),
                ("_swish", [1, 1280, 7, 7]),
            ],
        ),
        (
            "efficientnet_lite0_random",
            &[("_blocks.4", [1, 40, 28, 28])],
        ),
    ];
    for (name, shapes) in cases {
        let (path, m) = manifest(name);
        let rows = layers_json(&path);
        let stages: Vec<&str> = rows
            .iter()
            .filter(|r| r["stage"] == true)
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(stages, m.layers, "{name}: stages marked");
        for (layer, shape) in shapes {
            let row = rows
                .iter()
                .find(|r| r["name"] == *layer)
                .unwrap_or_else(|| panic!("{name}: no {layer}"));
            assert_eq!(row["shape"], serde_json::json!(shape), "{name} {layer}");
            assert_eq!(row["untappable"], Value::Null);
        }
    }
}
