//! The taps shim against what PyTorch forward hooks recorded (tests/oracles/make_fixtures.py).

use std::io::Cursor;
use std::path::{Path, PathBuf};

use tch::{CModule, Device, IValue, Tensor};
use zoo_select::config::{InputConfig, Layout, Precision};
use zoo_select::taps::pool;
use zoo_select::zoo::{ModelSpec, ZooModel};
use zoo_select::{taps, Error};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/taps")
        .join(name)
}

fn expected() -> Vec<(String, Tensor)> {
    Tensor::read_npz(fixture("expected.npz")).unwrap()
}

fn get(all: &[(String, Tensor)], key: &str) -> Tensor {
    all.iter()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("no {key} in expected.npz"))
        .1
        .shallow_clone()
}

fn tap_names() -> Vec<String> {
    std::fs::read_to_string(fixture("names.txt"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn run_taps(model_file: &str, names: &[String]) -> Vec<Tensor> {
    let bytes = taps::rewrite("tiny", &fixture(model_file), names).unwrap();
    let mut module = CModule::load_data(&mut Cursor::new(bytes)).unwrap();
    module.set_eval();
    let input = get(&expected(), "input");
    let out = tch::no_grad(|| module.method_is("forward_taps", &[IValue::Tensor(input)])).unwrap();
    match out {
        IValue::Tuple(items) => items
            .into_iter()
            .map(|v| match v {
                IValue::Tensor(t) => t,
                other => panic!("not a tensor: {other:?}"),
            })
            .collect(),
        other => panic!("not a tuple: {other:?}"),
    }
}

/// A model spec for a fixture file: unnormalised `size` x `size` input, the given layers.
fn fixture_spec(name: &str, file: &str, size: u32, layers: Vec<String>) -> ModelSpec {
    ModelSpec {
        name: name.into(),
        path: fixture(file),
        manifest: None,
        input: InputConfig {
            size,
            resize: None,
            interpolation: Default::default(),
            mean: [0.0; 3],
            std: [1.0; 3],
        },
        layout: Layout::Nchw,
        layers,
        head: None,
        pretrained: None,
        sha256: None,
    }
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    (a - b).abs().max().double_value(&[])
}

fn check_against_hooks(model_file: &str) {
    let names = tap_names();
    let got = run_taps(model_file, &names);
    let want = expected();
    assert_eq!(got.len(), names.len() + 1);
    assert!(
        max_abs_diff(&got[0], &get(&want, "output")) <= 1e-6,
        "model output"
    );
    for (name, tensor) in names.iter().zip(&got[1..]) {
        let diff = max_abs_diff(tensor, &get(&want, &format!("tap/{name}")));
        assert!(diff <= 1e-6, "{model_file} {name}: max abs diff {diff}");
    }
}

#[test]
fn scripted_taps_equal_forward_hooks() {
    check_against_hooks("tiny_scripted.pt");
}

#[test]
fn traced_taps_equal_forward_hooks() {
    check_against_hooks("tiny_traced.pt");
}

#[test]
fn in_place_ops_do_not_change_captured_values() {
    // stem.1 is a BatchNorm whose output the next ReLU overwrites in place: without the clone the
    // tap would hold the rectified values, with no negative entries.
    let want = get(&expected(), "tap/stem.1");
    assert!(want.min().double_value(&[]) < 0.0);
    let got = run_taps("tiny_traced.pt", &["stem.1".to_owned()]);
    assert!(max_abs_diff(&got[1], &want) <= 1e-6);
}

#[test]
fn shared_module_taps_last_call_and_numbered_calls() {
    let names: Vec<String> = ["block.relu", "block.relu#1", "block.relu#2"]
        .map(String::from)
        .into();
    let got = run_taps("tiny_scripted.pt", &names);
    assert!(
        max_abs_diff(&got[1], &got[3]) == 0.0,
        "plain name is the last call"
    );
    assert!(max_abs_diff(&got[1], &got[2]) > 0.0, "the two calls differ");
    let err = taps::rewrite(
        "tiny",
        &fixture("tiny_scripted.pt"),
        &["block.relu#3".to_owned()],
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "model `tiny`: layer `block.relu#3` cannot be tapped: forward calls it only 2 time(s)"
    );
}

#[test]
fn unknown_layer_names_nearby_ones() {
    let path = fixture("tiny_traced.pt");
    let err = taps::rewrite("tiny", &path, &["block.bn3".to_owned()]).unwrap_err();
    match &err {
        Error::LayerNotFound { layer, nearby, .. } => {
            assert_eq!(layer, "block.bn3");
            assert_eq!(
                nearby[..2],
                ["block.bn1".to_owned(), "block.bn2".to_owned()]
            );
        }
        other => panic!("wrong error {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.starts_with(
            "model `tiny` has no submodule `block.bn3` (did you mean `block.bn1`, `block.bn2`"
        ),
        "{text}"
    );
    assert!(
        text.ends_with(&format!(
            "use `zoo-select layers {}` to list names",
            path.display()
        )),
        "{text}"
    );
}

#[test]
fn frozen_model_is_refused() {
    let err =
        taps::rewrite("frozen", &fixture("tiny_frozen.pt"), &["block".to_owned()]).unwrap_err();
    assert!(matches!(err, Error::FrozenModel { .. }), "{err:?}");
    assert!(
        err.to_string().contains("is frozen (torch.jit.freeze)"),
        "{err}"
    );
}

#[test]
fn calls_inside_loops_and_branches_are_refused() {
    let path = fixture("loop_scripted.pt");
    let err = taps::rewrite("loop", &path, &["conv".to_owned()]).unwrap_err();
    assert!(
        err.to_string().starts_with(
            "model `loop`: layer `conv` cannot be tapped: it is called inside a scripted loop"
        ),
        "{err}"
    );
    let err = taps::rewrite("loop", &path, &["up".to_owned()]).unwrap_err();
    assert!(
        err.to_string().contains("called inside a scripted branch"),
        "{err}"
    );
    // The head runs unconditionally: tappable in the same model.
    assert!(taps::rewrite("loop", &path, &["head".to_owned()]).is_ok());
}

#[test]
fn missing_and_corrupt_model_files_are_load_errors() {
    let err =
        taps::rewrite("m", Path::new("/nonexistent/model.pt"), &["x".to_owned()]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "model `m`: cannot load /nonexistent/model.pt: No such file or directory (os error 2)"
    );
    let not_model = fixture("names.txt");
    let err = taps::rewrite("m", &not_model, &["x".to_owned()]).unwrap_err();
    assert!(matches!(err, Error::ModelLoad { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("not a TorchScript file libtorch can read"),
        "{err}"
    );
    assert!(!err.to_string().contains('\n'));
    assert!(
        err.to_string().ends_with(
            "; export it with scripts/export_zoo.py (`--module PKG.MOD:FACTORY --weights FILE` for \
             your own network) or torch.jit.script(model).save(path)"
        ),
        "{err}"
    );
    assert!(!err.to_string().contains("internal miniz error"), "{err}");
    // A torch.save'd state dict (tests/oracles/make_fixtures.py): said as such.
    let err = taps::rewrite("m", &fixture("state_dict.pt"), &["x".to_owned()]).unwrap_err();
    assert!(
        err.to_string().contains(
            "state_dict.pt: saved with torch.save (a state dict or pickled module), not TorchScript ("
        ),
        "{err}"
    );
}

#[test]
fn layer_listing_marks_untappable_modules() {
    let listing = taps::layers(&fixture("loop_scripted.pt")).unwrap();
    let by_name = |n: &str| listing.iter().find(|l| l.name == n).unwrap().clone();
    assert_eq!(by_name("head").calls, 1);
    assert_eq!(by_name("head").untappable, None);
    assert_eq!(
        by_name("conv").untappable.as_deref(),
        Some("called inside a loop")
    );
    assert_eq!(
        by_name("down").untappable.as_deref(),
        Some("called inside a branch")
    );
    let tiny = taps::layers(&fixture("tiny_traced.pt")).unwrap();
    let relu = tiny.iter().find(|l| l.name == "block.relu").unwrap();
    assert_eq!(relu.calls, 2);
    assert_eq!(tiny.len(), 13);
}

#[test]
fn branches_fixed_by_the_module_are_folded_and_data_branches_refused() {
    // `if self.use_extra:` and `if not self.use_skip:` read flags of the module, `if
    // self.training:` is false in eval mode: those branches are resolved; `if x.mean() > 100`
    // depends on the data.
    let names: Vec<String> = ["conv", "extra"].map(String::from).into();
    let got = run_taps("branch_scripted.pt", &names);
    let want = expected();
    for (name, tensor) in names.iter().zip(&got[1..]) {
        let diff = max_abs_diff(tensor, &get(&want, &format!("branch/{name}")));
        assert!(diff <= 1e-6, "{name}: max abs diff {diff}");
    }
    let path = fixture("branch_scripted.pt");
    // `act` runs unconditionally AND in the data branch: a hook would keep the branch's value
    // when it runs, so no single tap is right.
    let err = taps::rewrite("branch", &path, &["act".to_owned()])
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(
            "model `branch`: layer `act` cannot be tapped: it is called inside a scripted branch"
        ),
        "{err}"
    );
    let err = taps::rewrite("branch", &path, &["drop".to_owned()])
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "model `branch`: layer `drop` cannot be tapped: forward never calls it"
    );

    let listing = taps::layers(&path).unwrap();
    let why = |n: &str| {
        listing
            .iter()
            .find(|l| l.name == n)
            .unwrap()
            .untappable
            .clone()
    };
    assert_eq!(why("act").as_deref(), Some("called inside a branch"));
    assert_eq!(why("drop").as_deref(), Some("not called by forward"));
    assert_eq!(why("extra"), None);
}

#[test]
fn conditions_that_can_change_are_not_folded() {
    // `if self.first:` reads a flag forward assigns, `if y is None:` a Union set by data: both
    // stay branches, so the modules under them cannot be tapped.
    let listing = taps::layers(&fixture("state_scripted.pt")).unwrap();
    let why = |n: &str| {
        listing
            .iter()
            .find(|l| l.name == n)
            .unwrap()
            .untappable
            .clone()
    };
    for name in ["a", "b", "c"] {
        assert_eq!(
            why(name).as_deref(),
            Some("called inside a branch"),
            "{name}"
        );
    }
}

#[test]
fn the_pipeline_folds_batchnorms_only_where_no_tap_changes() {
    // TorchScript's folding pass rewrites shared convolution weights for every method, so with
    // taps that keep some BatchNorms unfolded (here `block.conv1` and `block.bn1`) a folded
    // model would apply a BatchNorm twice; the pipeline checks and runs such a model unfolded.
    let spec = |layers: &[&str]| {
        let layers: Vec<String> = layers.iter().map(|l| l.to_string()).collect();
        fixture_spec("tiny", "tiny_scripted.pt", 12, layers)
    };
    let names = tap_names();
    let all: Vec<&str> = names.iter().map(String::as_str).collect();
    let want = expected();
    let model = ZooModel::load(&spec(&all), Device::Cpu, false, Precision::F32).unwrap();
    assert!(!model.batchnorm_folded);
    let features = model.run(&get(&want, "input")).unwrap();
    for (name, got) in names.iter().zip(&features.layers) {
        let reference = pool(&get(&want, &format!("tap/{name}")), Layout::Nchw)
            .unwrap()
            .unwrap();
        assert!(max_abs_diff(got, &reference) <= 1e-6, "{name}");
    }
    // Tapping only `tokens`, every pair folds the same way in every method: folded, and equal
    // to the hooks up to rounding.
    let model = ZooModel::load(&spec(&["tokens"]), Device::Cpu, false, Precision::F32).unwrap();
    assert!(model.batchnorm_folded);
    let got = model.run(&get(&want, "input")).unwrap().layers.remove(0);
    let reference = pool(&get(&want, "tap/tokens"), Layout::Nchw)
        .unwrap()
        .unwrap();
    let scale = reference.abs().max().double_value(&[]);
    assert!(max_abs_diff(&got, &reference) <= 1e-5 * scale);
}

#[test]
fn optimised_modules_pool_taps_inside_onednn_and_match_the_hooks() {
    // Plain convolutions: the rule optimises the module. `stem` leaves oneDNN already pooled,
    // (N, C, 1, 1); `block` does not, as its dense copy also feeds `tokens`, a dense op whose
    // output comes out as captured. Pooled, all equal the forward hooks' values up to rounding.
    let names: Vec<String> = ["stem", "block", "tokens"].map(String::from).to_vec();
    let rewritten = taps::prepare("tiny", &fixture("tiny_traced.pt"), &names).unwrap();
    assert_eq!(
        rewritten.layers,
        taps::layers(&fixture("tiny_traced.pt")).unwrap()
    );
    let base = rewritten.folded.unwrap_or(rewritten.plain);
    let optimized = base
        .optimized("tiny", true, true)
        .unwrap()
        .unwrap_or_else(|why| panic!("declined: {why}"));
    let want = expected();
    let (_, got) = optimized
        .run("tiny", &get(&want, "input"), names.len())
        .unwrap();
    assert_eq!(got[0].size(), [3, 8, 1, 1]);
    assert_eq!(got[1].size(), [3, 8, 6, 6]);
    assert_eq!(got[2].size(), [3, 36, 8]);
    for (name, t) in names.iter().zip(&got) {
        let reference = pool(&get(&want, &format!("tap/{name}")), Layout::Nchw)
            .unwrap()
            .unwrap();
        let mine = pool(t, Layout::Nchw).unwrap().unwrap();
        let scale = reference.abs().max().double_value(&[]);
        assert!(max_abs_diff(&mine, &reference) <= 1e-5 * scale, "{name}");
    }
}

#[test]
fn depthwise_networks_are_not_optimised() {
    let names = vec!["dw".to_owned(), "pw".to_owned()];
    let rewritten = taps::prepare("dw", &fixture("depthwise_scripted.pt"), &names).unwrap();
    let base = rewritten.folded.unwrap_or(rewritten.plain);
    let why = base.optimized("dw", true, true).unwrap().err();
    assert_eq!(
        why.as_deref(),
        Some("it has grouped or depthwise convolutions")
    );
    // The rule is about speed: unjudged, the optimised module gives the same pooled taps.
    let forced = base.optimized("dw", true, false).unwrap().unwrap();
    let x = Tensor::randn([2, 3, 10, 10], (tch::Kind::Float, Device::Cpu));
    let (_, a) = base.run("dw", &x, 2).unwrap();
    let (_, b) = forced.run("dw", &x, 2).unwrap();
    for (a, b) in a.iter().zip(&b) {
        let (a, b) = (
            pool(a, Layout::Nchw).unwrap().unwrap(),
            pool(b, Layout::Nchw).unwrap().unwrap(),
        );
        assert!(max_abs_diff(&a, &b) <= 1e-5 * a.abs().max().double_value(&[]));
    }
    // Through the pipeline's loader: left as it is, and reported so.
    let spec = fixture_spec("dw", "depthwise_scripted.pt", 10, names);
    let model = ZooModel::load(&spec, Device::Cpu, false, Precision::F32).unwrap();
    assert!(!model.optimized);
}
