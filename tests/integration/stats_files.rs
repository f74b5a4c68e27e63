//! Statistics as files, through the binary: a killed or interrupted run resumes to the same
//! report, shards merge to the single run's report, the cache reuses exactly what is still
//! valid, bad files are refused with the reason, and the output folder is checked first.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A model entry of the committed tiny zoo, under `name`, with `mean` and `layers`.
fn model(name: &str, file: &str, mean: f64, layers: &str) -> String {
    format!(
        "  - name: {name}\n    path: {}\n    input: {{size: 16, mean: [{mean}, 0.4, 0.3], std: [0.25, 0.2, 0.3]}}\n    layers: [{layers}]\n",
        fixtures().join("zoo").join(file).display()
    )
}

fn two_models() -> String {
    model("tiny_a", "tiny_a.pt", 0.5, "stem, block, tokens, fc")
        + &model("tiny_b", "tiny_b.pt", 0.5, "stem, block, tokens, fc")
}

/// A run folder: a config over `images` with `models`, and an output folder.
struct Setup {
    dir: tempfile::TempDir,
}

/// The config text: `device: cpu` unless `extra` names the devices.
fn config_text(images: &Path, models: &str, extra: &str) -> String {
    let device = if extra.contains("device:") {
        ""
    } else {
        "device: cpu\n"
    };
    format!(
        "dataset: {{root: {}}}\nmodels:\n{models}{device}batch_size: 4\nmetrics: [transrate, logme, hscore_shrink, leep]\n{extra}",
        images.display()
    )
}

impl Setup {
    fn new(images: &Path, models: &str, extra: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("run.yaml"),
            config_text(images, models, extra),
        )
        .unwrap();
        Setup { dir }
    }

    fn rewrite(&self, images: &Path, models: &str, extra: &str) {
        std::fs::write(self.config(), config_text(images, models, extra)).unwrap();
    }

    fn write(&self, text: &str) {
        std::fs::write(self.config(), text).unwrap();
    }

    fn config(&self) -> String {
        self.dir.path().join("run.yaml").display().to_string()
    }

    fn out(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `zoo-select [sub] --config run.yaml -o <out> extra...`.
    fn run(&self, sub: &[&str], out: &str, extra: &[&str]) -> Output {
        let config = self.config();
        let out = self.out(out).display().to_string();
        let mut args: Vec<&str> = sub.to_vec();
        args.extend(["--config", &config, "-o", &out, "-q"]);
        args.extend_from_slice(extra);
        common::zoo_select(&args)
    }

    fn ok(&self, sub: &[&str], out: &str, extra: &[&str]) -> Value {
        let o = self.run(sub, out, extra);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        report(&self.out(out))
    }

    fn command(&self, out: &str) -> Command {
        self.command_hangup(out, false)
    }

    /// With SIGHUP ignored (`nohup`) or at its default, whatever this test process inherited.
    fn command_hangup(&self, out: &str, ignored: bool) -> Command {
        use std::os::unix::process::CommandExt;
        let mut c = common::command();
        let disposition = if ignored {
            libc::SIG_IGN
        } else {
            libc::SIG_DFL
        };
        // SAFETY: signal(2) is async-signal-safe, as pre_exec requires.
        unsafe {
            c.pre_exec(move || {
                libc::signal(libc::SIGHUP, disposition);
                Ok(())
            });
        }
        c.args(["--config", &self.config(), "-o"])
            .arg(self.out(out))
            .arg("-q")
            .env_remove("LD_LIBRARY_PATH")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        c
    }
}

fn report(out: &Path) -> Value {
    let text = std::fs::read_to_string(out.join("report.json")).expect("report.json written");
    serde_json::from_str(&text).unwrap()
}

fn error_line(o: &Output) -> String {
    let stderr = String::from_utf8_lossy(&o.stderr);
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
    errors[0].to_owned()
}

/// Every score of `b` within `rel` of `a`'s, and the same images counted.
fn assert_same_scores(a: &Value, b: &Value, rel: f64) {
    assert_eq!(a["dataset"]["per_class"], b["dataset"]["per_class"]);
    assert_eq!(a["dataset"]["skipped"], b["dataset"]["skipped"]);
    let (ra, rb) = (
        a["results"].as_array().unwrap(),
        b["results"].as_array().unwrap(),
    );
    assert_eq!(ra.len(), rb.len());
    for (x, y) in ra.iter().zip(rb) {
        assert_eq!((&x["model"], &x["layer"]), (&y["model"], &y["layer"]));
        let (sx, sy) = (
            x["scores"].as_object().unwrap(),
            y["scores"].as_object().unwrap(),
        );
        assert_eq!(sx.len(), sy.len());
        for (k, v) in sx {
            let (v, w) = (v.as_f64().unwrap(), sy[k].as_f64().unwrap());
            assert!(
                (v - w).abs() <= rel * v.abs().max(1e-12),
                "{}/{} {k}: {v} vs {w}",
                x["model"],
                x["layer"]
            );
        }
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

fn checkpoints(out: &Path) -> usize {
    std::fs::read_dir(out.join("stats").join("checkpoints"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".zss"))
                .count()
        })
        .unwrap_or(0)
}

/// Starts a run and waits until its first checkpoint is on disk.
fn start_until_checkpoint(setup: &Setup, out: &str) -> std::process::Child {
    start_command_until_checkpoint(setup, out, setup.command(out))
}

fn start_command_until_checkpoint(
    setup: &Setup,
    out: &str,
    mut command: Command,
) -> std::process::Child {
    let mut child = command.spawn().unwrap();
    let start = Instant::now();
    while checkpoints(&setup.out(out)) == 0 {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run ended ({status}) before its first checkpoint");
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no checkpoint after 2 minutes"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child
}

#[test]
fn a_killed_run_resumes_to_the_uninterrupted_report() {
    let tmp = tempfile::tempdir().unwrap();
    let images = common::synthetic_images(tmp.path(), 500, true);
    let setup = Setup::new(&images, &two_models(), "checkpoint_every: 0\n");
    let whole = setup.ok(&[], "whole", &["--no-cache"]);
    assert_eq!(whole["statistics"]["resumed_files"], 0);

    // SIGKILL at a point drawn from the clock: anywhere from the first checkpoint on.
    let delay = Duration::from_millis(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos() as u64
            % 600,
    );
    eprintln!("killing {delay:?} after the first checkpoint");
    let mut child = start_until_checkpoint(&setup, "killed");
    std::thread::sleep(delay);
    if child.try_wait().unwrap().is_some() {
        panic!(
            "the run finished within {delay:?} of its first checkpoint; make the test set larger"
        );
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!setup.out("killed").join("report.json").exists());

    let resumed = setup.ok(&[], "killed", &[]);
    let done = resumed["statistics"]["resumed_files"].as_u64().unwrap();
    assert!(done > 0 && done < 1501, "resumed after {done} files");
    assert_same_scores(&whole, &resumed, 1e-9);
    assert_eq!(
        checkpoints(&setup.out("killed")),
        0,
        "checkpoints left after the run"
    );
}

#[test]
fn sigint_checkpoints_and_exits_130() {
    let tmp = tempfile::tempdir().unwrap();
    let images = common::synthetic_images(tmp.path(), 500, true);
    let setup = Setup::new(&images, &two_models(), "checkpoint_every: 0\n");
    // SIGHUP (a closed terminal or SSH session) as SIGINT.
    for (signal, out) in [(libc::SIGINT, "out"), (libc::SIGHUP, "hangup")] {
        let child = start_until_checkpoint(&setup, out);
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, signal) };
        let o = child.wait_with_output().unwrap();
        assert_eq!(
            o.status.code(),
            Some(130),
            "signal {signal}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let line = error_line(&o);
        assert!(line.starts_with("error: interrupted after "), "{line}");
        assert!(
            line.ends_with("run the same command again to resume"),
            "{line}"
        );
        assert!(checkpoints(&setup.out(out)) >= 1);
    }
    // Started under nohup, a hang-up does not stop it.
    let command = setup.command_hangup("nohup", true);
    let child = start_command_until_checkpoint(&setup, "nohup", command);
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(setup.out("nohup").join("report.json").exists());
    let resumed = setup.ok(&[], "out", &[]);
    assert!(resumed["statistics"]["resumed_files"].as_u64().unwrap() > 0);
    let whole = setup.ok(&[], "whole", &["--no-cache"]);
    assert_same_scores(&whole, &resumed, 1e-9);
}

#[test]
fn shards_merge_to_the_single_run() {
    // 144 images: every batch of every shard (N = 3, 4) holds 4 images, as in the single run.
    // A forward pass in f32 gives an image features that differ in the last bits with the size
    // of its batch (the kernels change), which no merge can undo; whole batches leave only the
    // order of the f64 sums to differ.
    let tmp = tempfile::tempdir().unwrap();
    let images = common::synthetic_images(tmp.path(), 48, false);
    let setup = Setup::new(&images, &two_models(), "");
    // With NCTI, whose scores are combined across all the rows once the shards are added up.
    setup.write(&config_text(&images, &two_models(), "").replace(
        "metrics: [transrate, logme, hscore_shrink, leep]",
        "metrics: [transrate, logme, hscore_shrink, leep, ncti]",
    ));
    let single = setup.ok(&[], "single", &["--no-cache"]);
    assert_eq!(single["results"][0]["sample_rows"], 144);
    for n in [1, 3, 4] {
        let mut files = Vec::new();
        for k in 1..=n {
            let shard = format!("{k}/{n}");
            let o = setup.run(&["pass"], "shards", &["--shard", &shard]);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            files.push(setup.out("shards").join(format!("shard-{k}-of-{n}.zss")));
        }
        // The command line's order does not matter.
        files.reverse();
        let mut args = vec!["score".to_owned(), "--config".into(), setup.config()];
        args.extend([
            "-o".into(),
            setup.out("merged").display().to_string(),
            "-q".into(),
        ]);
        args.extend(files.iter().map(|f| f.display().to_string()));
        let o = common::zoo_select(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(
            o.status.success(),
            "N = {n}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let merged = report(&setup.out("merged"));
        assert_same_scores(&single, &merged, 1e-9);
        assert_eq!(merged["statistics"]["shards"].as_array().unwrap().len(), n);
        assert_eq!(merged["memory"]["spilled_rows_bytes"], 0);
        if n == 4 {
            // With a memory budget of a few KiB the shards' rows spill as they are read, and
            // the merged scores do not move.
            let text = std::fs::read_to_string(setup.config()).unwrap();
            setup.write(&format!("{text}memory_budget: 0.0000047\n"));
            let mut args = args.clone();
            let at = args.iter().position(|a| a.ends_with("merged")).unwrap();
            args[at] = setup.out("merged-spilled").display().to_string();
            let quiet = args.iter().position(|a| a == "-q").unwrap();
            args[quiet] = "-v".into();
            let o = common::zoo_select(&args.iter().map(String::as_str).collect::<Vec<_>>());
            let stderr = String::from_utf8_lossy(&o.stderr);
            assert!(o.status.success(), "{stderr}");
            assert!(stderr.contains("spilling feature rows to"), "{stderr}");
            let spilled = report(&setup.out("merged-spilled"));
            assert_same_scores(&merged, &spilled, 1e-12);
            let left = std::fs::read_dir(setup.out("merged-spilled").join("stats"))
                .map(|d| {
                    d.flatten()
                        .filter(|e| {
                            e.file_name()
                                .to_string_lossy()
                                .starts_with(".zoo-select-rows-")
                        })
                        .count()
                })
                .unwrap_or(0);
            assert_eq!(left, 0, "a spill file was left behind");
            setup.write(&text);
        }
    }

    // A missing, a duplicated and a foreign shard.
    let file = |k: usize| setup.out("shards").join(format!("shard-{k}-of-4.zss"));
    let score = |files: &[PathBuf]| {
        let mut args = vec!["score".to_owned(), "--config".into(), setup.config()];
        args.extend(["-o".into(), setup.out("bad").display().to_string()]);
        args.extend(files.iter().map(|f| f.display().to_string()));
        error_line(&common::zoo_select(
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        ))
    };
    let line = score(&[file(1), file(2), file(4)]);
    assert!(
        line.contains("shard(s) 3/4 missing; run `zoo-select pass --config"),
        "{line}"
    );
    let line = score(&[file(1), file(2), file(2), file(3), file(4)]);
    assert!(line.contains("shard 2/4 is given twice"), "{line}");
    let three = setup.out("shards").join("shard-1-of-3.zss");
    let line = score(&[file(1), file(2), file(3), file(4), three]);
    assert!(line.contains("is not a shard of the same run"), "{line}");
    assert!(line.contains("shard 1/3, of another split"), "{line}");
    let other = Setup::new(&images, &two_models(), "");
    other.write(
        &config_text(&images, &two_models(), "")
            .replace("}\nmodels", ", max_per_class: 5}\nmodels"),
    );
    let o = other.run(&["pass"], "shards", &["--shard", "4/4"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let foreign = other.out("shards").join("shard-4-of-4.zss");
    // Checked first against the images the config lists now (all 144)...
    let line = score(&[file(1), file(2), file(3), foreign.clone()]);
    assert!(
        line.contains(&format!(
            "{} is of other images than {} holds now (15 images in 3 classes then, 144 in 3 now: ",
            foreign.display(),
            images.display()
        )),
        "{line}"
    );
    // ... and, without that check, against each other.
    let mut args = vec!["score".to_owned(), "--config".into(), setup.config()];
    args.extend(["-o".into(), setup.out("bad").display().to_string()]);
    args.push("--no-image-check".into());
    args.extend(
        [file(1), file(2), file(3), foreign]
            .iter()
            .map(|f| f.display().to_string()),
    );
    let line = error_line(&common::zoo_select(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    assert!(line.contains("is not a shard of the same run"), "{line}");
    assert!(line.ends_with("its images differ"), "{line}");

    // Shards that agree with each other, but not with the images the config lists now.
    let class = std::fs::read_dir(&images)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let one = std::fs::read_dir(&class)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    std::fs::copy(&one, class.join("added.png")).unwrap();
    let line = score(&[file(1), file(2), file(3), file(4)]);
    assert!(
        line.ends_with(&format!(
            "{} is of other images than {} holds now (144 images in 3 classes then, 145 in 3 now: \
             images added, removed or changed, or another `max_per_class`); run the passes again, \
             score with the config they were made with, or, for images copied without their \
             modification times, pass --no-image-check",
            file(1).display(),
            images.display()
        )),
        "{line}"
    );
}

#[test]
fn damaged_and_foreign_files_name_the_mismatch() {
    let images = fixtures().join("images");
    let setup = Setup::new(&images, &two_models(), "");
    let o = setup.run(&["pass"], "p", &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let good = setup.out("p").join("shard-1-of-1.zss");
    let bytes = std::fs::read(&good).unwrap();
    let score = |bytes: &[u8]| {
        let path = setup.out("p").join("edited.zss");
        std::fs::write(&path, bytes).unwrap();
        error_line(&setup.run(&["score"], "s", &[path.to_str().unwrap()]))
    };
    // One bit flipped in the sums.
    let mut flipped = bytes.clone();
    let at = bytes.len() - 100;
    flipped[at] ^= 0x10;
    let line = score(&flipped);
    assert!(
        line.ends_with("checksum mismatch: the file is corrupt; delete it and run the pass again"),
        "{line}"
    );
    // Cut short.
    let line = score(&bytes[..bytes.len() / 2]);
    assert!(line.contains("damaged") || line.contains("ends"), "{line}");
    // Another format version.
    let mut version = bytes.clone();
    version[8..12].copy_from_slice(&99u32.to_le_bytes());
    let line = score(&version);
    assert!(
        line.contains("statistics format version 99, but this zoo-select"),
        "{line}"
    );
    assert!(
        line.ends_with("reads version 1; run the pass again with this version"),
        "{line}"
    );
    // Not a statistics file at all.
    let line = score(b"dataset: {}\n");
    assert!(
        line.ends_with("edited.zss: not a zoo-select statistics file"),
        "{line}"
    );
    // Statistics of another model file under the same name.
    setup.rewrite(
        &images,
        &(model("tiny_a", "tiny_b.pt", 0.5, "stem, block, tokens, fc")
            + &model("tiny_b", "tiny_b.pt", 0.5, "stem, block, tokens, fc")),
        "",
    );
    let line = error_line(&setup.run(&["score"], "s", &[good.to_str().unwrap()]));
    assert!(line.contains("has no statistics of model `tiny_a` as the config gives it: another model file (sha256 "), "{line}");
    setup.rewrite(
        &images,
        &(model("tiny_a", "tiny_a.pt", 0.7, "stem, block, tokens, fc")
            + &model("tiny_b", "tiny_b.pt", 0.5, "stem, block, tokens, fc")),
        "",
    );
    let line = error_line(&setup.run(&["score"], "s", &[good.to_str().unwrap()]));
    assert!(
        line.contains("as the config gives it: another preprocessing ("),
        "{line}"
    );

    // A damaged cache entry is recomputed, with a warning, not trusted.
    setup.rewrite(&images, &two_models(), "");
    let first = setup.ok(&[], "c", &[]);
    let entry = std::fs::read_dir(setup.out("c").join("stats"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("tiny_a-")
        })
        .unwrap();
    let mut b = std::fs::read(&entry).unwrap();
    let at = b.len() - 50;
    b[at] ^= 1;
    std::fs::write(&entry, b).unwrap();
    let second = setup.ok(&[], "c", &[]);
    assert_eq!(
        strings(&second["statistics"]["computed"]),
        ["tiny_a/stem", "tiny_a/block", "tiny_a/tokens", "tiny_a/fc"]
    );
    assert_same_scores(&first, &second, 1e-12);
}

#[test]
fn the_cache_reuses_exactly_what_is_still_valid() {
    let tmp = tempfile::tempdir().unwrap();
    let images = common::synthetic_images(tmp.path(), 8, true);
    let setup = Setup::new(&images, &two_models(), "");
    let computed = |r: &Value| strings(&r["statistics"]["computed"]);
    let reused = |r: &Value| strings(&r["statistics"]["reused"]);
    let all_a = ["tiny_a/stem", "tiny_a/block", "tiny_a/tokens", "tiny_a/fc"];
    let all_b = ["tiny_b/stem", "tiny_b/block", "tiny_b/tokens", "tiny_b/fc"];

    let first = setup.ok(&[], "out", &[]);
    assert_eq!(computed(&first).len(), 8);
    let again = setup.ok(&[], "out", &[]);
    assert!(computed(&again).is_empty());
    assert_eq!(reused(&again).len(), 8);
    assert_same_scores(&first, &again, 0.0);

    // One more model: only its pass.
    let three = two_models() + &model("tiny_c", "tiny_b.pt", 0.45, "stem, fc");
    setup.rewrite(&images, &three, "");
    let r = setup.ok(&[], "out", &[]);
    assert_eq!(computed(&r), ["tiny_c/stem", "tiny_c/fc"]);
    let fresh = setup.ok(&[], "fresh", &["--no-cache"]);
    assert_same_scores(&fresh, &r, 1e-12);
    assert!(
        !setup.out("fresh").join("stats").exists(),
        "--no-cache wrote to the cache, or left its folders"
    );

    // Another preprocessing of one model: that model only.
    let changed = model("tiny_a", "tiny_a.pt", 0.6, "stem, block, tokens, fc")
        + &model("tiny_b", "tiny_b.pt", 0.5, "stem, block, tokens, fc");
    setup.rewrite(&images, &changed, "");
    assert_eq!(computed(&setup.ok(&[], "out", &[])), all_a);

    // A new layer: that layer only; a removed one costs nothing, and comes back from the cache.
    let layers = model("tiny_a", "tiny_a.pt", 0.5, "stem, block, tokens, fc")
        + &model("tiny_b", "tiny_b.pt", 0.5, "block, fc, stem.0");
    setup.rewrite(&images, &layers, "");
    let r = setup.ok(&[], "out", &[]);
    assert_eq!(computed(&r), ["tiny_b/stem.0"]);
    setup.rewrite(&images, &two_models(), "");
    assert!(computed(&setup.ok(&[], "out", &[])).is_empty());

    // Another model file under the same name: that model only.
    let model_dir = tmp.path().join("zoo");
    std::fs::create_dir_all(&model_dir).unwrap();
    std::fs::copy(fixtures().join("zoo/tiny_a.pt"), model_dir.join("m.pt")).unwrap();
    let moved = |file: &str| {
        format!(
            "  - name: tiny_a\n    path: {}\n    input: {{size: 16, mean: [0.5, 0.4, 0.3], std: [0.25, 0.2, 0.3]}}\n    layers: [stem, block, tokens, fc]\n",
            model_dir.join(file).display()
        ) + &model("tiny_b", "tiny_b.pt", 0.5, "stem, block, tokens, fc")
    };
    setup.rewrite(&images, &moved("m.pt"), "");
    // The same bytes elsewhere are the same model.
    assert!(computed(&setup.ok(&[], "out", &[])).is_empty());
    std::fs::copy(fixtures().join("zoo/tiny_b.pt"), model_dir.join("m.pt")).unwrap();
    assert_eq!(computed(&setup.ok(&[], "out", &[])), all_a);

    // A changed image: everything.
    setup.rewrite(&images, &two_models(), "");
    assert!(computed(&setup.ok(&[], "out", &[])).is_empty());
    let img = images.join("circle").join("00003.png");
    image::RgbImage::from_pixel(16, 16, image::Rgb([1, 2, 3]))
        .save(&img)
        .unwrap();
    let r = setup.ok(&[], "out", &[]);
    assert_eq!(computed(&r), [&all_a[..], &all_b[..]].concat());

    // More metrics need more sums: computed again; fewer reuse what is there.
    let metrics = |list: &str| {
        config_text(&images, &two_models(), "").replace(
            "metrics: [transrate, logme, hscore_shrink, leep]",
            &format!("metrics: [{list}]"),
        )
    };
    setup.write(&metrics("transrate, logme, hscore_shrink, leep, gbc, nce"));
    assert_eq!(computed(&setup.ok(&[], "out", &[])).len(), 8);
    setup.write(&metrics("logme"));
    assert!(computed(&setup.ok(&[], "out", &[])).is_empty());
}

#[test]
fn the_output_folder_is_checked_before_the_pass() {
    let images = fixtures().join("images");
    let setup = Setup::new(&images, &two_models(), "");
    let cache = setup.out("cache");
    setup.rewrite(
        &images,
        &two_models(),
        &format!("cache: {}\n", cache.display()),
    );
    let entries = || {
        std::fs::read_dir(&cache).map_or(0, |d| {
            d.filter(|e| e.as_ref().unwrap().path().extension() == Some("zss".as_ref()))
                .count()
        })
    };
    let file = setup.out("afile");
    std::fs::write(&file, b"").unwrap();
    let o = setup.run(&[], "afile/out", &[]);
    let line = error_line(&o);
    assert_eq!(
        line,
        format!(
            "error: output folder {}: {} is a file, not a folder; choose another with --output (or `output:` in the config)",
            file.join("out").display(),
            file.display()
        )
    );
    // Before the pass: it left no statistics in the cache, as a pass does.
    assert_eq!(entries(), 0);
    setup.ok(&[], "ok", &[]);
    assert_eq!(entries(), 2);
    // A run without the cache leaves no empty checkpoint folder behind.
    setup.ok(&[], "uncached", &["--no-cache"]);
    assert!(!setup.out("uncached").join("stats").exists());
    let line = error_line(&setup.run(&[], "afile", &[]));
    assert!(line.contains("is a file, not a folder"), "{line}");
}

#[test]
fn two_devices_in_one_run_equal_one() {
    let images = fixtures().join("images");
    let setup = Setup::new(&images, &two_models(), "");
    let one = setup.ok(&[], "one", &["--no-cache"]);
    setup.rewrite(&images, &two_models(), "device: [cpu, cpu]\n");
    let two = setup.ok(&[], "two", &["--no-cache"]);
    assert_eq!(two["device"], "cpu,cpu");
    assert_same_scores(&one, &two, 1e-9);
    let flag = setup.ok(&[], "flag", &["--no-cache", "--device", "cpu,cpu,cpu"]);
    assert_eq!(flag["device"], "cpu,cpu,cpu");
    assert_same_scores(&one, &flag, 1e-9);
}

#[test]
fn rewritten_modules_are_kept_and_reused() {
    let tmp = tempfile::tempdir().unwrap();
    let images = common::synthetic_images(tmp.path(), 6, false);
    let setup = Setup::new(&images, &two_models(), "");
    let modules = setup.out("out").join("stats").join("modules");
    let listing = || {
        let mut files: Vec<(String, std::time::SystemTime, Vec<u8>)> = std::fs::read_dir(&modules)
            .unwrap()
            .flatten()
            .map(|e| {
                let meta = e.metadata().unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    meta.modified().unwrap(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        files.sort();
        files
    };
    let kept = setup.ok(&[], "out", &[]);
    let first = listing();
    let names: Vec<&str> = first.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names.len(), 4, "{names:?}");
    assert!(names[0].starts_with("tiny_a-") && names[0].ends_with(".json"));
    assert!(names[1].starts_with("tiny_a-") && names[1].ends_with(".pt"));

    // Other images: the statistics are computed again, the modules come from the cache (their
    // files untouched) and the scores are those of a run without any cache.
    let img = images.join("circle").join("00001.png");
    image::RgbImage::from_pixel(16, 16, image::Rgb([9, 8, 7]))
        .save(&img)
        .unwrap();
    let cached = setup.ok(&[], "out", &[]);
    assert_eq!(strings(&cached["statistics"]["computed"]).len(), 8);
    assert_eq!(listing(), first);
    // Each kept module is optimised for inference, or not, as when it was first made.
    let loads = |r: &Value| -> Vec<(bool, bool)> {
        r["timing"]["models"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["cached_module"].as_bool().unwrap(),
                    m["optimized"].as_bool().unwrap(),
                )
            })
            .collect()
    };
    let (made, reused) = (loads(&kept), loads(&cached));
    assert_eq!(made.len(), 2);
    assert!(made.iter().all(|(c, _)| !c) && reused.iter().all(|(c, _)| *c));
    let optimized = |l: &[(bool, bool)]| l.iter().map(|(_, o)| *o).collect::<Vec<_>>();
    assert_eq!(optimized(&made), optimized(&reused));
    let fresh = setup.ok(&[], "fresh", &["--no-cache"]);
    assert_same_scores(&fresh, &cached, 0.0);
    assert!(!setup.out("fresh").join("stats").join("modules").exists());

    // A module torn by a crash (a block of zeros, which TorchScript would load as zero weights)
    // fails its checksum; a whole module that libtorch cannot load is unusable. Either is
    // rewritten, with a warning, and changes nothing.
    let pt = modules.join(&first[1].0);
    let meta = modules.join(&first[0].0);
    let mut torn = first[1].2.clone();
    let middle = torn.len() / 2;
    torn[middle..middle + 64].fill(0);
    let unloadable = b"not a module".to_vec();
    let mut entry: serde_json::Value = serde_json::from_slice(&first[0].2).unwrap();
    // The blank image's features are kept too, a vector per layer, so no probe forward runs.
    let probe = entry["probe"].as_array().unwrap();
    assert!(!probe.is_empty() && probe.iter().all(|v| !v.as_array().unwrap().is_empty()));
    entry["module_crc32"] = crc32fast::hash(&unloadable).into();
    let damages = [
        (
            torn,
            None,
            "is damaged (its checksum does not match); rebuilding",
        ),
        (
            unloadable,
            Some(serde_json::to_vec(&entry).unwrap()),
            "the cached rewritten module of tiny_a is unusable",
        ),
    ];
    for (i, (module, json, warning)) in damages.into_iter().enumerate() {
        std::fs::write(&pt, module).unwrap();
        if let Some(json) = json {
            std::fs::write(&meta, json).unwrap();
        }
        image::RgbImage::from_pixel(16, 16, image::Rgb([7, 8, i as u8]))
            .save(&img)
            .unwrap();
        // Without -q, which shows errors only.
        let config = setup.config();
        let out = setup.out("out").display().to_string();
        let o = common::zoo_select(&["--config", &config, "-o", &out]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(stderr.contains(warning), "{stderr}");
        assert_eq!(std::fs::read(&pt).unwrap(), first[1].2);
    }
    let fresh = setup.ok(&[], "fresh", &["--no-cache"]);
    assert_same_scores(&fresh, &report(&setup.out("out")), 0.0);
}

#[test]
fn a_cache_or_checkpoint_that_cannot_be_written_costs_reuse_not_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let images = common::synthetic_images(tmp.path(), 200, false);
    let stem = model("tiny_a", "tiny_a.pt", 0.5, "stem");
    let setup = Setup::new(&images, &stem, "");
    let whole = setup.ok(&[], "whole", &["--no-cache"]);
    // Without -q: the warnings are the point.
    let loud = |out: &str| {
        let (config, out) = (setup.config(), setup.out(out).display().to_string());
        let o = common::zoo_select(&["--config", &config, "-o", &out]);
        let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "{stderr}");
        stderr
    };

    // A cache folder this run cannot write (here: under a file) is read, not kept.
    let blocker = setup.out("blocker");
    std::fs::write(&blocker, b"x").unwrap();
    let cache = blocker.join("cache");
    setup.rewrite(&images, &stem, &format!("cache: {}\n", cache.display()));
    let stderr = loud("read-only");
    assert!(
        stderr.contains(&format!(
            "cache folder {}: {} is a file, not a folder; statistics are read from it but not kept",
            cache.display(),
            blocker.display()
        )),
        "{stderr}"
    );
    assert_same_scores(&whole, &report(&setup.out("read-only")), 1e-12);
    // So do a shard's pass and the score, which never touches the cache.
    let o = setup.run(&["pass"], "read-only-shards", &["--shard", "1/1"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let shard = setup.out("read-only-shards").join("shard-1-of-1.zss");
    let merged = setup.ok(&["score"], "read-only-merged", &[shard.to_str().unwrap()]);
    assert_same_scores(&whole, &merged, 1e-12);

    // The cache's entry cannot be written (a folder stands where its file goes): a warning,
    // and the report of the pass.
    setup.rewrite(&images, &stem, "");
    setup.ok(&[], "c", &[]);
    block_the_statistics_file_in(&setup.out("c").join("stats"));
    std::fs::remove_file(setup.out("c").join("report.json")).unwrap();
    let stderr = loud("c");
    assert!(
        stderr.contains(
            "model `tiny_a`'s statistics are not kept in the cache, the run goes on; free space \
             there or give `cache:` another folder"
        ),
        "{stderr}"
    );
    assert_same_scores(&whole, &report(&setup.out("c")), 1e-12);

    // Checkpoints that cannot be written (a folder where the file goes) are warned about, and
    // the pass goes on to the same report.
    setup.rewrite(&images, &stem, "checkpoint_every: 0\n");
    let mut child = start_until_checkpoint(&setup, "k");
    child.kill().unwrap();
    child.wait().unwrap();
    let dir = setup.out("k").join("stats").join("checkpoints");
    block_the_statistics_file_in(&dir);
    let stderr = loud("k");
    let warning = format!(
        ": no checkpoint of part 1 now, the pass goes on (an interruption before the next one \
         would lose its work); free space in {}",
        dir.display()
    );
    // Once, not at every one of the 150 batches.
    assert_eq!(stderr.matches(&warning).count(), 1, "{stderr}");
    assert_same_scores(&whole, &report(&setup.out("k")), 1e-12);
}

/// Replaces the statistics file in `dir` by a folder that is not empty, so that writing the
/// file again fails as a full disk would make it fail.
fn block_the_statistics_file_in(dir: &Path) {
    let file = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "zss"))
        .unwrap();
    std::fs::remove_file(&file).unwrap();
    std::fs::create_dir(&file).unwrap();
    std::fs::write(file.join("in-the-way"), b"x").unwrap();
}

#[test]
fn two_runs_sharing_a_cache_keep_each_others_layers() {
    let tmp = tempfile::tempdir().unwrap();
    let images = common::synthetic_images(tmp.path(), 200, false);
    let extra = format!("cache: {}\n", tmp.path().join("shared").display());
    let with =
        |layers: &str| Setup::new(&images, &model("tiny_a", "tiny_a.pt", 0.5, layers), &extra);
    let (a, b) = (with("stem, block"), with("tokens, fc"));
    // Started together, each reads a cache without the model's entry, computes its two
    // layers and writes the entry back: the later writer must keep the earlier one's.
    let runs = [
        a.command("out").spawn().unwrap(),
        b.command("out").spawn().unwrap(),
    ];
    for run in runs {
        let o = run.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let all = with("stem, block, tokens, fc").ok(&[], "out", &[]);
    assert_eq!(
        all["statistics"]["computed"],
        serde_json::json!([]),
        "{}",
        all["statistics"]
    );
    assert_eq!(all["statistics"]["reused"].as_array().unwrap().len(), 4);
}

#[test]
fn runs_share_the_per_user_cache_whatever_their_output_folder() {
    let images = fixtures().join("images");
    let setup = Setup::new(&images, &two_models(), "");
    let run = |out: &str, var: &str, value: &Path| {
        let o = setup.command(out).env(var, value).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        report(&setup.out(out))
    };
    let xdg = setup.out("xdg");
    let first = run("one", "XDG_CACHE_HOME", &xdg);
    assert_eq!(first["statistics"]["reused"].as_array().unwrap().len(), 0);
    let second = run("two", "XDG_CACHE_HOME", &xdg);
    assert_eq!(
        second["statistics"]["computed"].as_array().unwrap().len(),
        0
    );
    assert_eq!(second["statistics"]["reused"].as_array().unwrap().len(), 8);
    assert_eq!(
        second["statistics"]["cache"].as_str().unwrap(),
        xdg.join("zoo-select").display().to_string()
    );
    assert!(!setup.out("one").join("stats").exists());
    // Without XDG_CACHE_HOME: ~/.cache/zoo-select.
    let home = setup.out("home");
    let third = run("three", "HOME", &home);
    assert_eq!(
        third["statistics"]["cache"].as_str().unwrap(),
        home.join(".cache/zoo-select").display().to_string()
    );
}

#[test]
fn scores_are_kept_beside_the_statistics_and_recomputed_when_a_setting_changes() {
    let images = fixtures().join("images");
    let setup = Setup::new(&images, &two_models(), "");
    let text = std::fs::read_to_string(setup.config()).unwrap();
    setup.write(&text.replace(
        "metrics: [transrate, logme, hscore_shrink, leep]",
        "metrics: [knn, transrate]",
    ));
    let first = setup.ok(&[], "one", &[]);
    let scores_dir = setup.out("one").join("stats").join("scores");
    let files: Vec<PathBuf> = std::fs::read_dir(&scores_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 2, "{files:?}");
    // A rerun reads the kept scores: the same numbers, to the bit.
    let again = setup.ok(&[], "one", &[]);
    assert_eq!(first["results"], again["results"]);
    // Proof that they are read, not recomputed: a kept score altered by hand is reported.
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let mut kept: Value = serde_json::from_str(&text).unwrap();
        for row in kept["rows"].as_array_mut().unwrap() {
            for pair in row["scores"].as_array_mut().unwrap() {
                if pair[0] == "knn" {
                    pair[1] = Value::from(-7.0);
                }
            }
        }
        std::fs::write(f, serde_json::to_vec(&kept).unwrap()).unwrap();
    }
    let altered = setup.ok(&[], "one", &[]);
    for row in altered["results"].as_array().unwrap() {
        assert_eq!(row["scores"]["knn"], -7.0, "{row}");
    }
    // Another k for k-NN: scored again from the same statistics.
    let text = std::fs::read_to_string(setup.config()).unwrap() + "knn: {k: 3}\n";
    setup.write(&text);
    let rescored = setup.ok(&[], "one", &[]);
    assert_eq!(
        rescored["statistics"]["computed"].as_array().unwrap().len(),
        0
    );
    for row in rescored["results"].as_array().unwrap() {
        let knn = row["scores"]["knn"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&knn), "{row}");
    }
}
