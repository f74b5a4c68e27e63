//! The binary end to end on the committed tiny ImageFolder and zoo (tests/oracles/make_fixtures.py),
//! and every kind of bad input: one clear line on stderr, exit 1 (2 for usage), no report.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::zoo_select;

use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

struct Run {
    dir: tempfile::TempDir,
    output: Output,
}

impl Run {
    fn out_dir(&self) -> PathBuf {
        self.dir.path().join("out")
    }
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
    fn report(&self) -> Value {
        let text = std::fs::read_to_string(self.out_dir().join("report.json"))
            .expect("report.json written");
        serde_json::from_str(&text).unwrap()
    }
    /// The one error line, after checking the exit code and that no report was written.
    fn error_line(&self) -> String {
        assert_eq!(
            self.output.status.code(),
            Some(1),
            "stderr: {}",
            self.stderr()
        );
        assert!(
            !self.out_dir().join("report.json").exists(),
            "a failed run wrote a report"
        );
        let errors: Vec<String> = self
            .stderr()
            .lines()
            .filter(|l| l.starts_with("error: "))
            .map(String::from)
            .collect();
        assert_eq!(errors.len(), 1, "stderr: {}", self.stderr());
        assert!(
            !self.stderr().contains("panicked"),
            "stderr: {}",
            self.stderr()
        );
        errors[0].clone()
    }
}

const MODEL_A: &str = "
  - name: tiny_a
    path: {zoo}/tiny_a.pt
    input: {size: 16, mean: [0.5, 0.4, 0.3], std: [0.25, 0.2, 0.3]}
    layers: [stem, block, tokens, fc]";

/// Runs zoo-select on a config whose `{fixtures}`, `{zoo}` and `{images}` placeholders point at
/// the committed fixtures, writing into a fresh folder.
fn run_config(yaml: &str, extra: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let fx = fixtures();
    let text = yaml
        .replace("{zoo}", &fx.join("zoo").display().to_string())
        .replace("{images}", &fx.join("images").display().to_string())
        .replace("{fixtures}", &fx.display().to_string());
    let config = dir.path().join("run.yaml");
    std::fs::write(&config, text).unwrap();
    let out = dir.path().join("out");
    let mut args = vec![
        "--config",
        config.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let output = zoo_select(&args);
    Run { dir, output }
}

/// The published advice (the model and the cut by TransRate), which reads no sample rows: for
/// tests of the memory arithmetic, whose figures the default advice's sample would change.
const PUBLISHED_ADVICE: &str = "recommend: {model: primary, cut: primary}\n";

fn config_with_models(models: &str) -> String {
    format!("dataset: {{root: {{images}}}}\nmodels:{models}\ndevice: cpu\nbatch_size: 4\n")
}

#[test]
fn end_to_end_report_matches_the_python_reference() {
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("e2e_expected.json")).unwrap(),
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let output = zoo_select(&[
        "--config",
        fixtures().join("e2e.yaml").to_str().unwrap(),
        "--output",
        out.path().to_str().unwrap(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("report.json")).unwrap())
            .unwrap();

    let ds = &report["dataset"];
    assert_eq!(ds["classes"], expected["classes"]);
    assert_eq!(ds["images"], expected["images"]);
    assert_eq!(ds["per_class"], serde_json::json!([7, 7, 8]));
    assert_eq!(ds["empty_classes"], serde_json::json!(["empty_class"]));
    let skipped: Vec<(String, String)> = ds["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let p = PathBuf::from(s["path"].as_str().unwrap());
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                s["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(skipped.len(), 2);
    assert_eq!(skipped[0].0, "truncated.png");
    assert!(
        skipped[0].1.starts_with("corrupt or truncated image"),
        "{}",
        skipped[0].1
    );
    assert_eq!(
        skipped[1],
        (
            "notes.txt".to_owned(),
            "not an image (unrecognised format)".to_owned()
        )
    );

    // Scores equal TransRate computed in NumPy on PyTorch forward-hook features of the eager
    // models (the images are 16 x 16: no resampling, so preprocessing is exact).
    let want = expected["results"].as_array().unwrap();
    let got = report["results"].as_array().unwrap();
    assert_eq!(got.len(), want.len());
    let mut worst: f64 = 0.0;
    for (g, w) in got.iter().zip(want) {
        assert_eq!(
            (&g["model"], &g["layer"], &g["dim"]),
            (&w["model"], &w["layer"], &w["dim"])
        );
        assert_eq!(g["n"], 22);
        let (a, b) = (
            g["scores"]["transrate"].as_f64().unwrap(),
            w["transrate"].as_f64().unwrap(),
        );
        let rel = (a - b).abs() / b.abs();
        worst = worst.max(rel);
        assert!(
            rel < 1e-5,
            "{} {}: {a} vs reference {b}",
            g["model"],
            g["layer"]
        );
    }
    eprintln!("end-to-end worst relative difference: {worst:e}");

    // The model is the best by the primary metric; the cut inside it is the default strategy's
    // (TransRate in a 16-dimensional principal subspace, computed although the config asks only
    // for the published formula).
    let best = want
        .iter()
        .max_by(|a, b| {
            a["transrate"]
                .as_f64()
                .unwrap()
                .total_cmp(&b["transrate"].as_f64().unwrap())
        })
        .unwrap();
    let rec = &report["recommendation"];
    assert_eq!(
        (
            &rec["model"],
            rec["metric"].as_str(),
            rec["strategy"].as_str(),
            rec["cut_metric"].as_str()
        ),
        (
            &best["model"],
            Some("transrate"),
            Some("subspace"),
            Some("transrate_subspace")
        )
    );
    let best_cut = |model: &str| {
        got.iter()
            .filter(|r| r["model"] == model)
            .max_by(|a, b| {
                let s = |r: &Value| r["scores"]["transrate_subspace"].as_f64().unwrap();
                s(a).total_cmp(&s(b))
            })
            .unwrap()["layer"]
            .clone()
    };
    assert_eq!(rec["layer"], best_cut(best["model"].as_str().unwrap()));
    assert!(
        rec["text"].as_str().unwrap().starts_with(&format!(
            "Fine-tune {model}: keep everything up to {} and re-train what follows.\n\
             {model} has the best TransRate: {:.4} at {}",
            rec["layer"].as_str().unwrap(),
            best["transrate"].as_f64().unwrap(),
            best["layer"].as_str().unwrap(),
            model = best["model"].as_str().unwrap(),
        )),
        "{}",
        rec["text"]
    );
    for model in ["tiny_a", "tiny_b"] {
        assert_eq!(report["layer_cuts"][model]["layer"], best_cut(model));
    }
    // What fine-tuning re-trains above each cut, from the TorchScript graph, equals the count
    // from PyTorch forward hooks on the eager models.
    let params: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("e2e_params.json")).unwrap())
            .unwrap();
    for g in got {
        assert_eq!(
            g["params_after"],
            params[g["model"].as_str().unwrap()][g["layer"].as_str().unwrap()],
            "{} {}",
            g["model"],
            g["layer"]
        );
    }
    assert_eq!(report["device"], "cpu");
    assert_eq!(report["version"], env!("CARGO_PKG_VERSION"));
    let bytes = report["memory"]["accumulator_bytes"].as_u64().unwrap();
    // On the device, 8 bytes x (D + C D + D^2 + C D) over the 8 (model, layer) pairs, C = 3;
    // each class's 22 rows (C D = 3 x 12 at most, fewer than 2D) in host memory, f32.
    let dims = [8u64, 8, 8, 10, 12, 12, 12, 10];
    assert_eq!(
        bytes,
        dims.iter()
            .map(|d| 8 * (d + 3 * d + d * d + 3 * d))
            .sum::<u64>()
    );
    assert_eq!(
        report["memory"]["host_bytes"].as_u64().unwrap(),
        dims.iter().map(|d| 22 * d * 4).sum::<u64>()
    );

    let csv = std::fs::read_to_string(out.path().join("scores.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "model,layer,metric,score,dim,n,se,pretrained");
    // TransRate and the subspace strategy's score for each of the 8 (model, layer) pairs; no
    // standard errors (neither reads the sample), and the models' manifests say nothing.
    assert_eq!(lines.len(), 1 + 16);
    assert!(lines[1].starts_with("tiny_a,stem,transrate,"));
    assert!(lines[1].ends_with(",8,22,,"), "{}", lines[1]);
    assert!(std::fs::read_to_string(out.path().join("scores.svg"))
        .unwrap()
        .starts_with("<svg"));

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains(rec["text"].as_str().unwrap()), "{stdout}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("class folder `empty_class` has no files"),
        "{stderr}"
    );
    assert!(
        stderr.contains("truncated.png: corrupt or truncated image"),
        "{stderr}"
    );
}

#[test]
fn command_line_overrides_the_config() {
    let run = run_config(
        &format!("{}metrics: [transrate]\n", config_with_models(MODEL_A)),
        &["--max-per-class", "2", "--batch-size", "3", "-q"],
    );
    assert!(run.output.status.success(), "{}", run.stderr());
    let report = run.report();
    // The cap takes the first files in sorted order; in stripes/ that includes notes.txt, skipped.
    assert_eq!(report["dataset"]["per_class"], serde_json::json!([2, 2, 1]));
    // -q hides the table and the progress, not the recommendation.
    assert_eq!(
        run.stdout(),
        format!("{}\n", report["recommendation"]["text"].as_str().unwrap())
    );
    assert!(
        run.stdout().starts_with("Fine-tune tiny_a: "),
        "{}",
        run.stdout()
    );
    // Six files looked at, in batches of 3; the device thread's time splits into its parts.
    let timing = &report["timing"];
    let device = &timing["devices"][0];
    assert_eq!(device["batches"], 2);
    let s = |key: &str| device[key].as_f64().unwrap();
    let queueing = s("uploading_s") + s("forwards_s") + s("statistics_s");
    assert!(
        s("forwards_s") > 0.0 && queueing <= s("queueing_s"),
        "{device}"
    );
    let parts = [
        "waiting_for_batches_s",
        "queueing_s",
        "waiting_for_device_s",
        "settling_s",
        "spilling_s",
    ];
    let accounted: f64 = parts.iter().map(|k| s(k)).sum();
    assert!(accounted <= timing["pass_s"].as_f64().unwrap(), "{timing}");
    // The same steps on the device thread's CPU clock, none longer than on the wall (a clock
    // tick of slack): the forwards ran on this thread, so they took CPU time.
    let cpu = &device["cpu"];
    for key in parts
        .iter()
        .chain(&["uploading_s", "forwards_s", "statistics_s"])
    {
        let c = cpu[key].as_f64().unwrap();
        assert!(c <= s(key) + 0.01, "{key}: {device}");
    }
    assert!(cpu["forwards_s"].as_f64().unwrap() > 0.0, "{device}");
    // The decoding side: its workers decoded the six files, and handed over two batches.
    let decoding = &timing["decoding"];
    assert!(decoding["workers"].as_u64().unwrap() >= 1, "{timing}");
    assert!(decoding["decoding_s"].as_f64().unwrap() > 0.0, "{timing}");
    let handing = decoding["waiting_for_workers_s"].as_f64().unwrap()
        + decoding["waiting_for_devices_s"].as_f64().unwrap();
    assert!(handing <= timing["pass_s"].as_f64().unwrap(), "{timing}");
}

#[test]
fn batch_size_does_not_change_scores() {
    let a = run_config(&config_with_models(MODEL_A), &["--batch-size", "1", "-q"]);
    let b = run_config(&config_with_models(MODEL_A), &["--batch-size", "64", "-q"]);
    let (ra, rb) = (a.report(), b.report());
    for (x, y) in ra["results"]
        .as_array()
        .unwrap()
        .iter()
        .zip(rb["results"].as_array().unwrap())
    {
        let (x, y) = (
            x["scores"]["transrate"].as_f64().unwrap(),
            y["scores"]["transrate"].as_f64().unwrap(),
        );
        assert!((x - y).abs() / y.abs() < 1e-5, "{x} vs {y}");
    }
}

#[test]
fn one_usable_class_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let only = dir.path().join("only");
    std::fs::create_dir(&only).unwrap();
    std::fs::copy(
        fixtures().join("images/circle/circle_00.png"),
        only.join("a.png"),
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("broken")).unwrap();
    std::fs::write(dir.path().join("broken/x.png"), b"garbage").unwrap();
    let yaml = config_with_models(MODEL_A).replace("{images}", &dir.path().display().to_string());
    let run = run_config(&yaml, &[]);
    let line = run.error_line();
    assert!(
        line.ends_with(
            "1 class(es) with usable images (only); at least two are needed to compare classes"
        ),
        "{line}"
    );
}

#[test]
fn missing_model_file() {
    let run = run_config(
        &config_with_models(&MODEL_A.replace("tiny_a.pt", "nope.pt")),
        &[],
    );
    let line = run.error_line();
    assert!(
        line.starts_with("error: model `tiny_a`: cannot load "),
        "{line}"
    );
    assert!(
        line.ends_with("nope.pt: No such file or directory (os error 2)"),
        "{line}"
    );
}

#[test]
fn unknown_layer_suggests_names_and_the_layers_command() {
    let run = run_config(
        &config_with_models(&MODEL_A.replace("[stem, block, tokens, fc]", "[stem, blok]")),
        &[],
    );
    let line = run.error_line();
    assert!(
        line.starts_with("error: model `tiny_a` has no submodule `blok` (did you mean `block`"),
        "{line}"
    );
    assert!(
        line.contains("use `zoo-select layers ") && line.ends_with("tiny_a.pt` to list names"),
        "{line}"
    );
}

#[test]
fn nan_activations_name_model_and_layer() {
    let models = "
  - name: broken
    path: {zoo}/nan.pt
    input: {size: 16, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5]}
    layers: [conv, bad]";
    // In one batch the check at the end finds it; in batches of one, the check queued behind
    // batch 16 of 22 does.
    for extra in [&[][..], &["--batch-size", "1"]] {
        let run = run_config(&config_with_models(models), extra);
        let line = run.error_line();
        assert!(
            line.starts_with("error: model `broken`: layer `bad` produced NaN or Inf activations"),
            "{line}"
        );
    }
}

#[test]
fn frozen_model_is_refused() {
    let models = "
  - name: frozen
    path: {fixtures}/taps/tiny_frozen.pt
    input: {size: 16, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5]}
    layers: [block]";
    let line = run_config(&config_with_models(models), &[]).error_line();
    assert!(line.contains("is frozen (torch.jit.freeze)"), "{line}");
    // `layers: all` selects nothing from it: the error says why, not that the images are bad.
    let line = run_config(
        &config_with_models(&models.replace("layers: [block]", "layers: all")),
        &[],
    )
    .error_line();
    assert!(line.contains("is frozen (torch.jit.freeze)"), "{line}");
    // So does `zoo-select layers`, instead of an empty table.
    let path = fixtures().join("taps/tiny_frozen.pt");
    let o = zoo_select(&["layers", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("is frozen (torch.jit.freeze)"), "{stderr}");
}

#[test]
fn cuda_without_cuda_is_an_error() {
    if tch::Cuda::is_available() {
        return; // only meaningful on a machine without CUDA
    }
    let line = run_config(&config_with_models(MODEL_A), &["--device", "cuda"]).error_line();
    assert_eq!(
        line,
        "error: device `cuda`: CUDA is not available to libtorch here (no NVIDIA driver or GPU found); use `--device cpu`"
    );
}

#[test]
fn config_errors_name_the_key() {
    let run = run_config(
        &format!("{}max_per_clas: 3\n", config_with_models(MODEL_A)),
        &[],
    );
    let line = run.error_line();
    assert!(
        line.contains("run.yaml: unknown field `max_per_clas`"),
        "{line}"
    );
    let run = run_config(
        &format!(
            "{}metrics: [transrate, leap]\n",
            config_with_models(MODEL_A)
        ),
        &[],
    );
    assert!(
        run.error_line()
            .ends_with("unknown metric `leap` in `metrics`; known: transrate, logme, hscore, hscore_shrink, nce, leep, gbc, knn, sfda, ncti, ncm, cdnv, transrate_z, or `all`"),
        "{}",
        run.stderr()
    );
    let run = run_config(
        &config_with_models(MODEL_A).replace(
            "dataset: {root: {images}}",
            "dataset: {root: /does/not/exist}",
        ),
        &[],
    );
    assert!(
        run.error_line()
            .contains("dataset /does/not/exist: cannot open the folder"),
        "{}",
        run.stderr()
    );
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(zoo_select(&[]).status.code(), Some(2));
    assert_eq!(zoo_select(&["-v"]).status.code(), Some(2));
    assert_eq!(
        zoo_select(&["--config", "x.yaml", "--batch-size", "0"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(zoo_select(&["--frobnicate"]).status.code(), Some(2));
}

#[test]
fn layers_command_lists_tappable_names() {
    let out = zoo_select(&[
        "layers",
        fixtures().join("taps/tiny_traced.pt").to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success());
    let rows: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "stem",
            "stem.0",
            "stem.1",
            "stem.2",
            "block",
            "block.conv1",
            "block.bn1",
            "block.relu",
            "block.conv2",
            "block.bn2",
            "tokens",
            "pool",
            "fc"
        ]
    );
    assert_eq!(rows[7]["calls"], 2);
    let out = zoo_select(&["layers", "/no/such/model.pt"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "error: model `model`: cannot load /no/such/model.pt: No such file or directory (os error 2)"
    );
}

#[test]
fn metrics_all_end_to_end_match_the_python_reference() {
    let model_b = MODEL_A.replace("tiny_a", "tiny_b");
    let yaml = format!(
        "{}metrics: all\n",
        config_with_models(&format!("{MODEL_A}{model_b}"))
    );
    let run = run_config(&yaml, &[]);
    assert!(run.output.status.success(), "{}", run.stderr());
    let report = run.report();
    // Every known metric; the default advice's scores are among them, so none is appended.
    let names = zoo_select::metrics::KNOWN;
    assert!(names.contains(&zoo_select::recommend::DEFAULT_MODEL_RULE));
    let auto =
        zoo_select::recommend::Strategy::by_name(zoo_select::recommend::DEFAULT_STRATEGY).unwrap();
    for images_per_class in [1.0, 1e6] {
        assert!(names.contains(&auto.resolve(images_per_class).name));
    }
    assert_eq!(report["metrics"], serde_json::json!(names));
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("e2e_expected.json")).unwrap(),
    )
    .unwrap();
    let mut worst: f64 = 0.0;
    for (got, want) in report["results"]
        .as_array()
        .unwrap()
        .iter()
        .zip(expected["results"].as_array().unwrap())
    {
        assert_eq!(
            (&got["model"], &got["layer"]),
            (&want["model"], &want["layer"])
        );
        for name in names {
            let (a, b) = (
                got["scores"][name].as_f64().unwrap(),
                want["all"][name].as_f64().unwrap(),
            );
            // The network's f32 arithmetic depends on the batch size (7e-8 relative on the
            // features here); metrics near zero (LogME of -0.009) turn that into more relative
            // difference, so values below 1 are compared absolutely.
            let rel = (a - b).abs() / b.abs().max(1.0);
            worst = worst.max(rel);
            assert!(
                rel < 1e-5,
                "{} {} {name}: {a} vs reference {b}",
                got["model"],
                got["layer"]
            );
        }
    }
    eprintln!("metrics: all, worst relative difference {worst:e}");
    // NCTI's score is relative to the run's 8 rows: the report says so and keeps its terms.
    assert!(report["relative"]["ncti"]
        .as_str()
        .unwrap()
        .contains("candidate (model, layer) rows"));
    for (got, want) in report["results"]
        .as_array()
        .unwrap()
        .iter()
        .zip(expected["results"].as_array().unwrap())
    {
        for term in ["seli", "ncc", "vc"] {
            let (a, b) = (
                got["terms"]["ncti"][term].as_f64().unwrap(),
                want["ncti_terms"][term].as_f64().unwrap(),
            );
            assert!(
                (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                "{term}: {a} vs {b}"
            );
        }
    }
    // The table shows every metric, ranked by the first.
    let header = run
        .stdout()
        .lines()
        .find(|l| l.trim_start().starts_with("rank"))
        .unwrap()
        .to_owned();
    for name in names {
        assert!(header.contains(name), "{header}");
    }
    let csv = std::fs::read_to_string(run.out_dir().join("scores.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 8 * names.len());
}

#[test]
fn ncti_ranks_and_recommends_like_any_higher_is_better_score() {
    let model_b = MODEL_A.replace("tiny_a", "tiny_b");
    let yaml = format!(
        "{}metrics: [ncti, transrate]\nrecommend: {{model: primary, cut: primary}}\n",
        config_with_models(&format!("{MODEL_A}{model_b}"))
    );
    let run = run_config(&yaml, &[]);
    assert!(run.output.status.success(), "{}", run.stderr());
    let report = run.report();
    // tiny_b's `tokens` is best in all three terms over the 8 rows (e2e_expected.json): 2.
    let recommendation = &report["recommendation"];
    assert_eq!(recommendation["metric"], "ncti");
    assert_eq!(recommendation["model"], "tiny_b");
    assert_eq!(recommendation["layer"], "tokens");
    assert!((recommendation["score"].as_f64().unwrap() - 2.0).abs() < 1e-9);
    let first = run
        .stdout()
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("rank"))
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    assert!(
        first.contains("tiny_b") && first.contains("tokens"),
        "{}",
        run.stdout()
    );
    // One image per class (the first file of stripes/ is not an image, so that class has
    // none): nothing varies within a class, which a rule finds before any metric runs; a note
    // on every row for every metric and a warning naming it, not a panic.
    let run = run_config(&yaml, &["--max-per-class", "1"]);
    assert!(run.output.status.success(), "{}", run.stderr());
    let single =
        "no score: every class has a single image here, so nothing can vary within a class";
    assert!(
        run.stderr()
            .contains(&format!("ncti: model `tiny_a` layer `stem`: {single}\n")),
        "{}",
        run.stderr()
    );
    let report = run.report();
    for row in report["results"].as_array().unwrap() {
        assert_eq!(row["notes"]["ncti"], single);
        assert_eq!(row["notes"]["transrate"], single);
        assert!(row["scores"].get("transrate").is_none(), "{row}");
    }
    assert_eq!(
        report["recommendation"]["text"],
        "No layer has a ncti score"
    );
}

#[test]
fn a_model_without_source_logits_gets_notes_not_scores() {
    // featmap.pt returns a (N, 4, H, W) feature map: no source logits for NCE and LEEP.
    let models = "
  - name: featmap
    path: {zoo}/featmap.pt
    input: {size: 16, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5]}
    layers: [conv, act]";
    let run = run_config(
        &format!(
            "{}metrics: [transrate, nce, leep]\n",
            config_with_models(models)
        ),
        &[],
    );
    assert!(run.output.status.success(), "{}", run.stderr());
    let report = run.report();
    for row in report["results"].as_array().unwrap() {
        assert!(row["scores"]["transrate"].is_f64(), "{row}");
        assert!(row["scores"].get("nce").is_none(), "{row}");
        let note = "no source logits: its output is not (N, classes) logits (shape [1, 4, 16, 16]) and no manifest names its head";
        assert_eq!(row["notes"]["nce"], note);
        assert_eq!(row["notes"]["leep"], note);
    }
    // A primary metric nothing has: no recommendation is made up.
    let run = run_config(
        &format!(
            "{}metrics: [leep, transrate]\nrecommend: {{model: primary, cut: primary}}\n",
            config_with_models(models)
        ),
        &[],
    );
    assert!(run.output.status.success(), "{}", run.stderr());
    assert_eq!(
        run.report()["recommendation"]["text"],
        "No layer has a leep score"
    );
}

#[test]
fn transrate_variants_come_from_the_same_pass() {
    let variants = "transrate_variants:
  tr_e2: {eps: 1.0e-2}
  tr_authors: {scale: trace, per_rank: true, class_weight: count}
  tr_l2: {normalize: l2}
";
    let run = run_config(
        &format!("{}{variants}", config_with_models(MODEL_A)),
        &["-q"],
    );
    assert!(run.output.status.success(), "{}", run.stderr());
    let report = run.report();
    assert_eq!(
        report["metrics"],
        serde_json::json!([
            "transrate",
            "tr_authors",
            "tr_e2",
            "tr_l2",
            "knn",
            "ncm",
            "transrate_z"
        ])
    );
    // A variant scores what the metric itself scores with those options.
    let alone = run_config(
        &format!(
            "{}transrate: {{eps: 1.0e-2}}\n",
            config_with_models(MODEL_A)
        ),
        &["-q"],
    );
    for (a, b) in report["results"]
        .as_array()
        .unwrap()
        .iter()
        .zip(alone.report()["results"].as_array().unwrap())
    {
        let (x, y) = (
            a["scores"]["tr_e2"].as_f64().unwrap(),
            b["scores"]["transrate"].as_f64().unwrap(),
        );
        assert!((x - y).abs() <= 1e-9 * y.abs(), "{x} vs {y}");
        assert!(a["scores"]["tr_l2"].is_f64() && a["scores"]["tr_authors"].is_f64());
    }
    let bad = run_config(
        &format!(
            "{}transrate_variants: {{logme: {{eps: 0.1}}}}\n",
            config_with_models(MODEL_A)
        ),
        &[],
    );
    assert!(bad
        .error_line()
        .ends_with("`transrate_variants` cannot use the metric name `logme`"));
}

#[test]
fn reduced_precision_runs_and_changes_scores_a_little() {
    let f32_run = run_config(&config_with_models(MODEL_A), &["-q"]);
    let bf16_run = run_config(
        &format!("{}precision: bf16\n", config_with_models(MODEL_A)),
        &["-q"],
    );
    assert!(bf16_run.output.status.success(), "{}", bf16_run.stderr());
    for (a, b) in f32_run.report()["results"]
        .as_array()
        .unwrap()
        .iter()
        .zip(bf16_run.report()["results"].as_array().unwrap())
    {
        let (x, y) = (
            a["scores"]["transrate"].as_f64().unwrap(),
            b["scores"]["transrate"].as_f64().unwrap(),
        );
        assert!(x != y, "bf16 gave exactly the f32 score {x}");
        assert!(
            (x - y).abs() < 0.1 * x.abs(),
            "{} bf16 {y} vs f32 {x}",
            a["layer"]
        );
    }
}

#[test]
fn memory_is_checked_before_the_pass() {
    // tiny_a's layers are 8, 8, 8 and 10 wide; 24 files in 3 classes, so every class keeps its
    // rows: 4 x 24 x 34 = 3,264 bytes of f32 rows, and 8 (D + 2 C D + D^2) bytes of sums per
    // layer, 4,240 in all.
    let run = run_config(
        &(config_with_models(MODEL_A) + "memory_budget: 0.000001\n" + PUBLISHED_ADVICE),
        &[],
    );
    // The rows could go to disk; the sums cannot.
    assert_eq!(
        run.error_line(),
        "error: the statistics would need 4.1 KiB of memory for sums and samples (and 3.2 KiB \
         of feature rows that can go to disk) but the memory budget is 1.0 KiB; use fewer \
         layers or models, a smaller `dataset.max_per_class`, or a larger `memory_budget` (GiB)"
    );
    let run = run_config(&(config_with_models(MODEL_A) + "memory_budget: 0\n"), &[]);
    assert!(run
        .error_line()
        .ends_with("`memory_budget` must be a positive number of GiB, got 0"));
}

#[test]
fn rows_beyond_the_memory_budget_spill_to_disk_and_score_the_same() {
    // 4.1 KiB of sums stay in memory; a budget of 5.0 KiB leaves the 3.2 KiB of rows about
    // 0.9 KiB, so most of them go to a spill file in the output's stats/ folder.
    let unlimited = run_config(&(config_with_models(MODEL_A) + PUBLISHED_ADVICE), &[]);
    let tight = run_config(
        &(config_with_models(MODEL_A) + "memory_budget: 0.0000047\n" + PUBLISHED_ADVICE),
        &[],
    );
    for run in [&unlimited, &tight] {
        assert!(run.output.status.success(), "stderr: {}", run.stderr());
    }
    let (a, b) = (unlimited.report(), tight.report());
    assert_eq!(a["memory"]["spilled_rows_bytes"], 0);
    let spilled = b["memory"]["spilled_rows_bytes"].as_u64().unwrap();
    assert!(spilled > 0, "nothing spilled: {}", b["memory"]);
    assert!(
        b["memory"]["host_bytes"].as_u64().unwrap() < a["memory"]["host_bytes"].as_u64().unwrap()
    );
    let (ra, rb) = (
        a["results"].as_array().unwrap(),
        b["results"].as_array().unwrap(),
    );
    assert_eq!(ra.len(), rb.len());
    let mut worst: f64 = 0.0;
    for (x, y) in ra.iter().zip(rb) {
        assert_eq!(x["layer"], y["layer"]);
        for (metric, value) in x["scores"].as_object().unwrap() {
            let (p, q) = (
                value.as_f64().unwrap(),
                y["scores"][metric].as_f64().unwrap(),
            );
            worst = worst.max((p - q).abs() / p.abs().max(1e-3));
            assert!(
                (p - q).abs() <= 1e-12 * p.abs().max(1e-3),
                "{} {metric}: spilled {q} vs in memory {p}",
                x["layer"]
            );
        }
    }
    eprintln!("spilled {spilled} B of rows; worst relative difference {worst:e}");
    // The spill file went with the statistics.
    let stats = tight.out_dir().join("stats");
    let left: Vec<String> = std::fs::read_dir(&stats)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(zoo_select::stats::SPILL_PREFIX))
        .collect();
    assert!(
        left.is_empty(),
        "spill files left in {}: {left:?}",
        stats.display()
    );
}

#[test]
fn a_metric_that_fails_on_a_layer_leaves_a_note_and_the_run_goes_on() {
    // Identical images: every layer's features are constant. A rule finds that before any
    // metric runs, on every CPU alike (left to the metrics, one CPU's Cholesky refused the
    // matrix and another's rounding let SFDA score 0.5).
    let images = tempfile::tempdir().unwrap();
    for class in ["a", "b"] {
        std::fs::create_dir(images.path().join(class)).unwrap();
        for i in 0..4 {
            image::RgbImage::new(16, 16)
                .save(images.path().join(class).join(format!("{i}.png")))
                .unwrap();
        }
    }
    let yaml = config_with_models(MODEL_A)
        .replace("{images}", &images.path().display().to_string())
        + "metrics: [transrate, sfda, ncti]\n";
    let run = run_config(&yaml, &[]);
    assert!(run.output.status.success(), "{}", run.stderr());
    let report = run.report();
    let rows = report["results"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    for row in rows {
        for metric in ["transrate", "sfda", "ncti"] {
            assert!(row["scores"].get(metric).is_none(), "{row}");
            let note = row["notes"][metric].as_str().unwrap();
            assert!(
                note.starts_with("no score: the features do not vary across images ("),
                "{note}"
            );
            assert!(
                note.ends_with("): identical images, or a dead layer"),
                "{note}"
            );
        }
    }
    assert_eq!(
        run.stderr()
            .matches("WARN sfda: model `tiny_a` layer ")
            .count(),
        4
    );
}

#[test]
fn an_output_or_cache_inside_the_dataset_is_refused() {
    let images = fixtures().join("images");
    let inside = images.join("runs");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("run.yaml");
    let text = config_with_models(MODEL_A)
        .replace("{zoo}", &fixtures().join("zoo").display().to_string())
        .replace("{images}", &images.display().to_string());
    std::fs::write(&config, text).unwrap();
    let o = zoo_select(&[
        "--config",
        config.to_str().unwrap(),
        "-o",
        inside.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "the output folder {} is inside the dataset {}: the next run would read its files as \
             images; choose a folder outside the dataset",
            inside.display(),
            images.display()
        )),
        "{stderr}"
    );
    assert!(!inside.exists());
    let cache = format!("cache: {}\n", images.join("a/stats").display());
    let run = run_config(&(config_with_models(MODEL_A) + &cache), &[]);
    assert!(
        run.error_line().contains("the cache folder "),
        "{}",
        run.stderr()
    );
}

#[test]
fn a_layout_that_reads_a_map_the_wrong_way_is_warned_about() {
    // featmap.pt's taps are (N, 4, 16, 16): square only as NCHW.
    let models = "
  - name: featmap
    path: {zoo}/featmap.pt
    input: {size: 16, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5]}
    layers: [conv, act]
    layout: LAYOUT";
    let warning =
        "model `featmap` layer `conv`: its output [1, 4, 16, 16] is a square map only if \
                   read as `layout: nchw`, for a square input";
    let run = run_config(&config_with_models(&models.replace("LAYOUT", "nhwc")), &[]);
    assert!(run.output.status.success(), "{}", run.stderr());
    assert!(run.stderr().contains(warning), "{}", run.stderr());
    let run = run_config(&config_with_models(&models.replace("LAYOUT", "nchw")), &[]);
    assert!(run.output.status.success(), "{}", run.stderr());
    assert!(!run.stderr().contains("square map"), "{}", run.stderr());
}

#[test]
fn a_model_for_one_channel_says_the_images_are_rgb() {
    let models = "
  - name: grey
    path: {zoo}/grey.pt
    input: {size: 16, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5]}
    layers: [conv]";
    let line = run_config(&config_with_models(models), &[]).error_line();
    assert!(
        line.starts_with("error: model `grey`: its forward fails on 16 x 16 RGB images ("),
        "{line}"
    );
    assert!(
        line.ends_with(
            "zoo-select feeds 3-channel RGB images (grey ones replicated to three channels) and \
             the model must take 3 channels: re-export it with a 3-channel stem, or wrap it to \
             turn 3 channels into what it takes"
        ),
        "{line}"
    );
}

#[test]
fn a_model_of_one_input_size_run_at_another_says_so() {
    // fixed16.pt flattens its 16 x 16 map into a Linear layer.
    let models = "
  - name: fixed
    path: {zoo}/fixed16.pt
    input: {size: 8, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5]}
    layers: [conv]";
    let line = run_config(&config_with_models(models), &[]).error_line();
    assert!(
        line.starts_with("error: model `fixed`: its forward fails on 8 x 8 RGB images (")
            && line.contains("mat1 and mat2 shapes cannot be multiplied"),
        "{line}"
    );
    assert!(
        line.ends_with(
            "the model seems to take one input size only: set `input.size` to the size it was \
             exported at, or export it with adaptive pooling before its classifier"
        ),
        "{line}"
    );
    // With a manifest, the size it was exported at is known.
    let dir = tempfile::tempdir().unwrap();
    let pt = fixtures().join("zoo/fixed16.pt");
    let manifest = dir.path().join("fixed.yaml");
    std::fs::write(
        &manifest,
        format!(
            "name: fixed\nfile: {}\nsha256: {}\npretrained: false\n\
             input: {{size: 16, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5]}}\nlayers: [conv]\n",
            pt.display(),
            zoo_select::zoo::sha256_file(&pt).unwrap()
        ),
    )
    .unwrap();
    let models = format!(
        "\n  - manifest: {}\n    input: {{size: 8}}",
        manifest.display()
    );
    let line = run_config(&config_with_models(&models), &[]).error_line();
    assert!(
        line.ends_with(
            "the model seems to take one input size only: its manifest says it was exported at \
             16: set `input.size: 16` (or leave it out), or export it with adaptive pooling \
             before its classifier"
        ),
        "{line}"
    );
}

#[test]
fn classes_of_one_image_are_warned_about_and_noted() {
    let images = tempfile::tempdir().unwrap();
    let source = fixtures().join("images");
    for (class, kind, n) in [("a", "circle", 1), ("b", "square", 1), ("c", "stripes", 4)] {
        std::fs::create_dir(images.path().join(class)).unwrap();
        for i in 0..n {
            std::fs::copy(
                source.join(format!("{kind}/{kind}_0{i}.png")),
                images.path().join(class).join(format!("{i}.png")),
            )
            .unwrap();
        }
    }
    let yaml = config_with_models(MODEL_A)
        .replace("{images}", &images.path().display().to_string())
        + "metrics: [transrate, knn, gbc]\n";
    let run = run_config(&yaml, &[]);
    assert!(run.output.status.success(), "{}", run.stderr());
    let warning = "2 classes have a single image: a, b; k-NN (leave-one-out) and GBC (class \
                   variances) need at least two images per class: add images to those classes, \
                   or remove their folders";
    assert_eq!(run.stderr().matches(warning).count(), 1, "{}", run.stderr());
    let report = run.report();
    for row in report["results"].as_array().unwrap() {
        let notes = &row["notes"];
        for metric in ["knn", "gbc"] {
            assert!(row["scores"][metric].is_f64(), "{row}");
            let note = notes[metric].as_str().unwrap_or_default();
            assert!(
                note.starts_with("2 classes have a single image: a, b; ")
                    && note.ends_with(
                        ", which biases the score: give each class two images or more (add \
                         images, or remove those classes' folders)"
                    ),
                "{metric}: {note}"
            );
        }
        assert!(notes.get("transrate").is_none(), "{row}");
    }
    assert!(report["results"][0]["notes"]["knn"]
        .as_str()
        .unwrap()
        .contains("k-NN's leave-one-out finds no other image of such a class"));
}

/// The default advice with few images a class: the model by its best layer's k-NN accuracy, the
/// cut (strategy `auto`) by the nearest-class-mean accuracy, each with this run's jackknife
/// standard error from 10 folds of the sample, in report.json and scores.csv; `folds: 0` leaves
/// them out. `transrate_z`, the cut's score with many images a class, is scored but gets no
/// fold scores here.
#[test]
fn the_default_advice_reads_knn_and_ncm_with_this_runs_errors() {
    let models = format!("{MODEL_A}{}", MODEL_A.replace("tiny_a", "tiny_b"));
    let run = run_config(&config_with_models(&models), &["-q"]);
    assert!(run.output.status.success(), "{}", run.stderr());
    let report = run.report();
    let rec = &report["recommendation"];
    assert_eq!(
        (
            &rec["model_rule"],
            &rec["metric"],
            &rec["strategy"],
            &rec["cut_metric"]
        ),
        (
            &serde_json::json!("knn"),
            &serde_json::json!("knn"),
            &serde_json::json!("auto"),
            &serde_json::json!("ncm")
        )
    );
    let rows = report["results"].as_array().unwrap();
    let best = rows
        .iter()
        .map(|r| r["scores"]["knn"].as_f64().unwrap())
        .fold(f64::NEG_INFINITY, f64::max);
    assert_eq!(rec["score"].as_f64().unwrap(), best);
    // ncm (the cut's score) has fold scores on every layer; knn (the model's) on each model's
    // best layer only, the one that stands for the model.
    for r in rows {
        let best_knn = rows
            .iter()
            .filter(|o| o["model"] == r["model"])
            .map(|o| o["scores"]["knn"].as_f64().unwrap())
            .fold(f64::NEG_INFINITY, f64::max);
        let first_best = rows
            .iter()
            .find(|o| o["model"] == r["model"] && o["scores"]["knn"].as_f64() == Some(best_knn))
            .unwrap();
        let knn_expected = first_best["layer"] == r["layer"];
        assert_eq!(r["folds"].get("knn").is_some(), knn_expected, "{r}");
        for metric in ["knn", "ncm"] {
            let Some(folds) = r["folds"][metric].as_array() else {
                continue;
            };
            // 22 images in 10 folds: every non-empty fold is a group.
            assert!((8..=10).contains(&folds.len()), "{metric}: {r}");
            // The jackknife's standard error of the leave-fold-out values.
            let v: Vec<f64> = folds.iter().map(|f| f.as_f64().unwrap()).collect();
            let k = v.len() as f64;
            let mean = v.iter().sum::<f64>() / k;
            let se = ((k - 1.0) / k * v.iter().map(|x| (x - mean).powi(2)).sum::<f64>()).sqrt();
            assert!((r["errors"][metric].as_f64().unwrap() - se).abs() <= 1e-12 * se.max(1.0));
        }
        assert!(r["folds"]["ncm"].is_array(), "{r}");
        assert!(r["scores"]["transrate_z"].is_f64(), "{r}");
        assert!(r["folds"].get("transrate_z").is_none(), "{r}");
    }
    let csv = std::fs::read_to_string(run.out_dir().join("scores.csv")).unwrap();
    assert!(
        csv.starts_with("model,layer,metric,score,dim,n,se,pretrained\n"),
        "{csv}"
    );
    let off = run_config(&(config_with_models(&models) + "folds: 0\n"), &["-q"]);
    assert!(off.output.status.success(), "{}", off.stderr());
    assert!(off.report()["results"][0].get("folds").is_none());
    let one = run_config(&(config_with_models(&models) + "folds: 1\n"), &["-q"]);
    assert!(one
        .error_line()
        .ends_with("`folds` must be 0 (no standard errors) or at least 2"));
}

/// With many images a class (here 80, past the switch at 77) the default cut follows
/// `transrate_z`: its fold scores on every layer, its standard error on the cut, and the cut is
/// each model's best layer by it; ncm is still scored, without fold scores.
#[test]
fn with_many_images_a_class_the_default_cut_reads_transrate_z() {
    let tmp = tempfile::tempdir().unwrap();
    let images = common::synthetic_images(tmp.path(), 80, false);
    let yaml = config_with_models(MODEL_A).replace("{images}", &images.display().to_string())
        + "folds: 4\n";
    let run = run_config(&yaml, &["-q"]);
    assert!(run.output.status.success(), "{}", run.stderr());
    let report = run.report();
    let rec = &report["recommendation"];
    assert_eq!(
        (rec["strategy"].as_str(), rec["cut_metric"].as_str()),
        (Some("auto"), Some("transrate_z"))
    );
    let rows = report["results"].as_array().unwrap();
    let best = rows
        .iter()
        .max_by(|a, b| {
            let z = |r: &Value| r["scores"]["transrate_z"].as_f64().unwrap();
            z(a).total_cmp(&z(b))
        })
        .unwrap();
    assert_eq!(rec["layer"], best["layer"]);
    assert_eq!(rec["cut_se"], best["errors"]["transrate_z"]);
    for r in rows {
        assert_eq!(
            r["folds"]["transrate_z"].as_array().map(Vec::len),
            Some(4),
            "{r}"
        );
        assert!(
            r["scores"]["ncm"].is_f64() && r["folds"].get("ncm").is_none(),
            "{r}"
        );
    }
    assert!(
        rec["text"]
            .as_str()
            .unwrap()
            .contains("has its best TransRate's z against shuffled labels"),
        "{}",
        rec["text"]
    );
}
