//! Models named through manifests and zoo folders, layer selectors, and manifest errors, on the
//! committed tiny model and its manifest (tests/oracles/make_fixtures.py).

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A temporary zoo folder holding tiny_a.pt and its manifest, the manifest edited by `edit`.
fn zoo(edit: impl Fn(String) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixtures().join("zoo/tiny_a.pt"),
        dir.path().join("tiny_a.pt"),
    )
    .unwrap();
    let text = std::fs::read_to_string(fixtures().join("zoo/tiny_a.yaml")).unwrap();
    std::fs::write(dir.path().join("tiny_a.yaml"), edit(text)).unwrap();
    dir
}

fn run(zoo_dir: &Path, models_yaml: &str) -> (Output, Option<Value>) {
    run_with(zoo_dir, models_yaml, &["-q"])
}

/// As `run`, with these flags in place of `-q`.
fn run_with(zoo_dir: &Path, models_yaml: &str, flags: &[&str]) -> (Output, Option<Value>) {
    // In the zoo folder itself: a `.yml` file there is not taken for a manifest.
    let config = zoo_dir.join("run.yml");
    let text = format!(
        "dataset: {{root: {}}}\n{}\ndevice: cpu\nbatch_size: 8\noutput: out\n",
        fixtures().join("images").display(),
        models_yaml.replace("{zoo}", &zoo_dir.display().to_string())
    );
    std::fs::write(&config, text).unwrap();
    let mut args = vec!["--config", config.to_str().unwrap()];
    args.extend_from_slice(flags);
    let output = common::zoo_select(&args);
    let report = std::fs::read_to_string(zoo_dir.join("out/report.json"))
        .ok()
        .map(|t| serde_json::from_str(&t).unwrap());
    (output, report)
}

fn layers(report: &Value) -> Vec<(String, String)> {
    report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["model"].as_str().unwrap().to_owned(),
                r["layer"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pairs(model: &str, names: &[&str]) -> Vec<(String, String)> {
    names
        .iter()
        .map(|n| (model.to_owned(), n.to_string()))
        .collect()
}

fn error_line(output: &Output) -> String {
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    lines[0].to_owned()
}

#[test]
fn a_manifest_brings_file_input_and_stages() {
    let z = zoo(|t| t);
    let (out, report) = run(z.path(), "models:\n  - manifest: {zoo}/tiny_a.yaml");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = report.unwrap();
    assert_eq!(
        layers(&report),
        pairs("tiny_a", &["stem", "block", "tokens"])
    );
    // Same numbers as the inline config of the end-to-end fixture.
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("e2e_expected.json")).unwrap(),
    )
    .unwrap();
    for row in report["results"].as_array().unwrap() {
        let want = expected["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["model"] == "tiny_a" && e["layer"] == row["layer"])
            .unwrap()["transrate"]
            .as_f64()
            .unwrap();
        let got = row["scores"]["transrate"].as_f64().unwrap();
        assert!(
            (got - want).abs() / want.abs() < 1e-5,
            "{}: {got} vs {want}",
            row["layer"]
        );
    }
    assert_eq!(
        report["models"][0]["manifest"],
        z.path().join("tiny_a.yaml").display().to_string()
    );
    assert_eq!(report["models"][0]["head"], "fc");
}

#[test]
fn selectors_pick_stages_by_index_blocks_or_names() {
    let z = zoo(|t| t);
    let cases = [
        ("[-1]", vec!["tokens"]),
        ("[-2, -1]", vec!["block", "tokens"]),
        ("[0, fc]", vec!["stem", "fc"]),
        ("stages", vec!["stem", "block", "tokens"]),
        // Tappable submodules with submodules of their own.
        ("all", vec!["stem", "block"]),
    ];
    for (selector, want) in cases {
        let (out, report) = run(
            z.path(),
            &format!("models:\n  - manifest: {{zoo}}/tiny_a.yaml\n    layers: {selector}"),
        );
        assert!(
            out.status.success(),
            "{selector}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            layers(&report.unwrap()),
            pairs("tiny_a", &want),
            "{selector}"
        );
    }
    let (out, _) = run(
        z.path(),
        "models:\n  - manifest: {zoo}/tiny_a.yaml\n    layers: [-4]",
    );
    let line = error_line(&out);
    assert!(line.ends_with("models[0]: model `tiny_a`: stage index -4 is out of range: it has 3 stages (stem, block, tokens)"), "{line}");
}

#[test]
fn a_zoo_folder_takes_every_matching_manifest() {
    let z = zoo(|t| t);
    // A second model in the folder: the same file under another name.
    let second = std::fs::read_to_string(z.path().join("tiny_a.yaml"))
        .unwrap()
        .replace("name: tiny_a", "name: tiny_copy");
    std::fs::write(z.path().join("tiny_copy.yaml"), second).unwrap();
    let (out, report) = run(z.path(), "zoo: {zoo}");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = layers(&report.unwrap());
    assert_eq!(got.len(), 6);
    assert_eq!(got[0].0, "tiny_a");
    assert_eq!(got[3].0, "tiny_copy");

    let (out, report) = run(
        z.path(),
        "zoo: {dir: {zoo}, include: ['tiny_*'], exclude: ['*copy'], layers: -1}",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(layers(&report.unwrap()), pairs("tiny_a", &["tokens"]));

    let (out, _) = run(z.path(), "zoo: {dir: {zoo}, include: [resnet*]}");
    assert!(
        error_line(&out).contains("zoo: no manifest in "),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (out, _) = run(
        z.path(),
        "models:\n  - manifest: {zoo}/tiny_a.yaml\nzoo: {dir: {zoo}, include: [tiny_a]}",
    );
    assert!(error_line(&out).ends_with(
        "two models are named `tiny_a`; rename one with `name:` in `models`, or leave one out with `zoo.exclude`"
    ));
    // A left-out model need not exist, and a YAML file that is no manifest is passed over.
    let broken = std::fs::read_to_string(z.path().join("tiny_a.yaml"))
        .unwrap()
        .replace("name: tiny_a", "name: broken")
        .replace("file: tiny_a.pt", "file: gone.pt");
    std::fs::write(z.path().join("broken.yaml"), broken).unwrap();
    std::fs::write(z.path().join("notes.yaml"), "just: notes\n").unwrap();
    let (out, report) = run(z.path(), "zoo: {dir: {zoo}, exclude: [broken]}");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(layers(&report.unwrap()).len(), 6);
}

#[test]
fn a_wrong_sha256_says_how_to_export_again() {
    let z = zoo(|t| {
        let sha = t
            .lines()
            .find(|l| l.starts_with("sha256: "))
            .unwrap()
            .to_owned();
        t.replace(&sha, &format!("sha256: {}", "0".repeat(64)))
    });
    let (out, report) = run(z.path(), "models:\n  - manifest: {zoo}/tiny_a.yaml");
    assert!(report.is_none());
    let line = error_line(&out);
    let m = z.path().join("tiny_a.yaml");
    let pt = z.path().join("tiny_a.pt");
    assert!(
        line.starts_with(&format!(
            "error: manifest {}: {} does not match the manifest (sha256 ",
            m.display(),
            pt.display()
        )),
        "{line}"
    );
    assert!(line.ends_with("the manifest says 000000000000...); export it again with: .venv/bin/python tests/oracles/make_fixtures.py"), "{line}");
}

#[test]
fn a_missing_model_file_says_how_to_export_it() {
    let z = zoo(|t| t);
    std::fs::remove_file(z.path().join("tiny_a.pt")).unwrap();
    let (out, _) = run(z.path(), "models:\n  - manifest: {zoo}/tiny_a.yaml");
    assert_eq!(
        error_line(&out),
        format!(
            "error: manifest {}: its model file {} is missing; export it again with: .venv/bin/python tests/oracles/make_fixtures.py",
            z.path().join("tiny_a.yaml").display(),
            z.path().join("tiny_a.pt").display()
        )
    );
}

#[test]
fn an_unknown_manifest_key_is_named() {
    let z = zoo(|t| format!("{t}colour: red\n"));
    let (out, _) = run(z.path(), "models:\n  - manifest: {zoo}/tiny_a.yaml");
    let line = error_line(&out);
    assert!(
        line.contains("tiny_a.yaml: unknown field `colour`, expected one of"),
        "{line}"
    );
    // The layers command reads manifests the same way.
    let out = common::zoo_select(&["layers", z.path().join("tiny_a.yaml").to_str().unwrap()]);
    assert!(error_line(&out).contains("unknown field `colour`"));
}

#[test]
fn layers_command_on_a_manifest_marks_stages_and_blocks() {
    let z = zoo(|t| t);
    let text =
        common::zoo_select_stdout(&["layers", z.path().join("tiny_a.yaml").to_str().unwrap()]);
    let line = |name: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name}: {text}"))
            .to_owned()
    };
    // 16 x 16 input: the stem halves it.
    assert!(
        line("stem").contains("[1, 8, 8, 8]") && line("stem").ends_with("stage; block"),
        "{}",
        line("stem")
    );
    assert!(
        line("tokens").contains("[1, 64, 8]") && line("tokens").ends_with("stage"),
        "{}",
        line("tokens")
    );
    assert!(line("fc").contains("[1, 10]"), "{}", line("fc"));
    assert!(text.contains("Shapes for one blank 16x16 image."), "{text}");
}

/// Each model's (size, resize) as the report gives them.
fn inputs(report: &Value) -> Vec<(u64, u64)> {
    report["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let input = &m["input"];
            (
                input["size"].as_u64().unwrap(),
                input["resize"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_new_input_size_keeps_the_manifests_resize_ratio() {
    // A 32-px resize cropped to 16: `size: 12` alone resizes to 24, not a 12-px centre of 32.
    let z = zoo(|t| t.replace("input: {size: 16,", "input: {size: 16, resize: 32,"));
    let (out, report) = run_with(
        z.path(),
        "models:\n  - manifest: {zoo}/tiny_a.yaml\n    input: {size: 12}",
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(inputs(&report.unwrap()), [(12, 24)]);
    assert!(
        stderr.contains(
            "model `tiny_a`: input size 12, resize 24 (the manifest's 32/16 ratio; set \
             `input.resize` to choose another)"
        ),
        "{stderr}"
    );
    // A resize given is taken as it is, without a word.
    let (out, report) = run_with(
        z.path(),
        "models:\n  - manifest: {zoo}/tiny_a.yaml\n    input: {size: 12, resize: 14}",
        &[],
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("ratio"));
    assert_eq!(inputs(&report.unwrap()), [(12, 14)]);
}

#[test]
fn a_zoo_entry_takes_input_for_every_model() {
    let z = zoo(|t| t.replace("input: {size: 16,", "input: {size: 16, resize: 32,"));
    let second = std::fs::read_to_string(z.path().join("tiny_a.yaml"))
        .unwrap()
        .replace("name: tiny_a", "name: tiny_copy");
    std::fs::write(z.path().join("tiny_copy.yaml"), second).unwrap();
    let (out, report) = run_with(
        z.path(),
        "zoo: {dir: {zoo}, input: {size: 12, interpolation: bicubic}}",
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report = report.unwrap();
    assert_eq!(inputs(&report), [(12, 24), (12, 24)]);
    for model in report["models"].as_array().unwrap() {
        assert_eq!(model["input"]["interpolation"], "bicubic");
    }
    for name in ["tiny_a", "tiny_copy"] {
        assert!(
            stderr.contains(&format!("model `{name}`: input size 12, resize 24")),
            "{stderr}"
        );
    }
    // A bad value names the model it was applied to.
    let (out, _) = run(z.path(), "zoo: {dir: {zoo}, input: {size: 0}}");
    let line = error_line(&out);
    assert!(
        line.ends_with("zoo: model `tiny_a`: input: `size` must be between 1 and 8192, got 0"),
        "{line}"
    );
}

#[test]
fn a_model_file_given_as_a_manifest_says_to_use_path() {
    let z = zoo(|t| t);
    let (out, _) = run(z.path(), "models:\n  - manifest: {zoo}/tiny_a.pt");
    let line = error_line(&out);
    assert!(
        line.starts_with(&format!(
            "error: manifest {}: it is a zip archive, as a TorchScript model file is, not a YAML \
             manifest; `manifest:` takes the <name>.yaml that scripts/export_zoo.py writes \
             beside the model (here, perhaps {}); ",
            z.path().join("tiny_a.pt").display(),
            z.path().join("tiny_a.yaml").display()
        )),
        "{line}"
    );
    assert!(
        line.ends_with("give it as `path:` with `name`, `input` and `layers`"),
        "{line}"
    );
}

#[test]
fn a_missing_manifest_gives_the_export_command() {
    let dir = tempfile::tempdir().unwrap();
    let zoo = dir.path().join("zoo");
    std::fs::create_dir(&zoo).unwrap();
    let config = dir.path().join("run.yaml");
    let manifest = zoo.join("timm_convnext_tiny.yaml");
    let body = format!(
        "dataset: {{root: {}}}\nmodels:\n  - manifest: zoo/timm_convnext_tiny.yaml\n",
        fixtures().join("images").display()
    );
    std::fs::write(&config, &body).unwrap();
    let out = common::zoo_select(&["--config", config.to_str().unwrap()]);
    let want = format!(
        "error: manifest {} does not exist; export it with scripts/export_zoo.py; for timm's \
         `convnext_tiny`: `.venv/bin/python scripts/export_zoo.py --timm convnext_tiny --out-dir \
         {}` (`--help` lists the other sources: torchvision, timm, EfficientNet-Lite, your own \
         module)",
        manifest.display(),
        zoo.display()
    );
    assert_eq!(error_line(&out), want);
    // A config whose opening comment gives the exports (configs/cifar100.yaml) is pointed at.
    std::fs::write(
        &config,
        format!("# Make the zoo first:\n#   scripts/export_zoo.py --timm convnext_tiny\n{body}"),
    )
    .unwrap();
    let out = common::zoo_select(&["--config", config.to_str().unwrap()]);
    assert_eq!(
        error_line(&out),
        format!(
            "{want}; the comment at the top of {} gives the commands that make its zoo",
            config.display()
        )
    );
}

#[test]
fn the_cifar100_example_on_a_fresh_clone_says_how_to_export_its_zoo() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = root.join("zoo/resnet50.yaml");
    if manifest.exists() {
        return; // exported here: nothing is missing
    }
    let out = common::zoo_select(&[
        "--config",
        root.join("configs/cifar100.yaml").to_str().unwrap(),
    ]);
    let line = error_line(&out);
    assert!(
        line.starts_with(&format!(
            "error: manifest {} does not exist; export it with scripts/export_zoo.py; for \
             torchvision's `resnet50`: `.venv/bin/python scripts/export_zoo.py --torchvision \
             resnet50` (",
            manifest.display()
        )),
        "{line}"
    );
    assert!(
        line.ends_with("cifar100.yaml gives the commands that make its zoo"),
        "{line}"
    );
}
