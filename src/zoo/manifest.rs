//! A model's metadata as data (timm's pretrained_cfg, in a file): zoo/<name>.yaml, written by
//! scripts/export_zoo.py beside zoo/<name>.pt. It fixes the file by its sha256, so a manifest
//! never describes a different model than the one loaded, and it remembers the command that
//! made it, so every error about it can say how to make it again.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{InputConfig, Layout};
use crate::error::{Error, Result};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    /// The TorchScript file, relative to the manifest's folder.
    pub file: PathBuf,
    pub sha256: String,
    /// `scripted` or `traced`.
    pub export: Option<String>,
    pub library: Option<String>,
    pub architecture: Option<String>,
    /// Absent or null where nobody knows: a module handed to the Python package as an object.
    #[serde(default)]
    pub pretrained: Option<bool>,
    pub weights: Option<String>,
    pub source_dataset: Option<String>,
    pub source_classes: Option<u64>,
    pub licence: Option<String>,
    pub input: InputConfig,
    #[serde(default)]
    pub layout: Layout,
    /// The stage outputs: the default layers, and what stage indices refer to.
    pub layers: Vec<String>,
    /// The submodule producing the source task's logits.
    pub head: Option<String>,
    pub export_command: Option<String>,
}

impl Manifest {
    /// Reads a manifest and checks that its model file exists and matches its sha256. The
    /// returned manifest's `file` is resolved against the manifest's folder.
    pub fn load(path: &Path) -> Result<Manifest> {
        let err = |message: String| Error::Manifest {
            path: path.to_owned(),
            message,
        };
        let text = read_text(path)?;
        let mut m: Manifest = serde_yaml::from_str(&text).map_err(|e| err(e.to_string()))?;
        m.input.check().map_err(|e| err(format!("input: {e}")))?;
        if m.layers.is_empty() {
            return Err(err(
                "`layers` is empty: it must list the model's stages".into()
            ));
        }
        let folder = path.parent().unwrap_or(Path::new("."));
        m.file = folder.join(&m.file);
        let again = m.remake_hint();
        let actual = match sha256_file(&m.file) {
            Ok(sha) => sha,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(err(format!(
                    "its model file {} is missing; {again}",
                    m.file.display()
                )));
            }
            Err(e) => return Err(err(format!("cannot read {}: {e}", m.file.display()))),
        };
        if !actual.eq_ignore_ascii_case(m.sha256.trim()) {
            return Err(err(format!(
                "{} does not match the manifest (sha256 {}..., the manifest says {}...); {again}",
                m.file.display(),
                &actual[..12],
                m.sha256.trim().get(..12).unwrap_or(m.sha256.trim())
            )));
        }
        m.sha256 = actual;
        Ok(m)
    }

    /// The model name of a manifest file, without checking its model file; None if the YAML is
    /// not a manifest at all (no `name` and `sha256`).
    pub fn peek_name(path: &Path) -> Result<Option<String>> {
        let err = |message: String| Error::Manifest {
            path: path.to_owned(),
            message,
        };
        let text = read_text(path)?;
        let value: serde_yaml::Value =
            serde_yaml::from_str(&text).map_err(|e| err(e.to_string()))?;
        let name = value
            .get("name")
            .and_then(|n| n.as_str())
            .map(str::to_owned);
        Ok(name.filter(|_| value.get("sha256").is_some()))
    }

    /// The input size a manifest says its model was exported at, read without checking the
    /// model file (for error messages); None if it cannot be read.
    pub fn exported_size(path: &Path) -> Option<u32> {
        let text = std::fs::read_to_string(path).ok()?;
        let value: serde_yaml::Value = serde_yaml::from_str(&text).ok()?;
        u32::try_from(value.get("input")?.get("size")?.as_u64()?).ok()
    }

    fn remake_hint(&self) -> String {
        match &self.export_command {
            Some(cmd) => format!("export it again with: {cmd}"),
            None => "export it again with scripts/export_zoo.py".to_owned(),
        }
    }
}

/// A manifest's text, or an error that says what the file is instead and what to do.
fn read_text(path: &Path) -> Result<String> {
    let err = |message: String| Error::Manifest {
        path: path.to_owned(),
        message,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::ManifestMissing {
            path: path.to_owned(),
            hint: export_hint(path),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Err(err(not_text(path))),
        Err(e) => Err(err(format!("cannot read: {e}"))),
    }
}

/// Why a manifest that is not UTF-8 text was refused: most often a model file given as one.
fn not_text(path: &Path) -> String {
    let mut magic = [0u8; 4];
    let zip = std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|()| &magic == b"PK\x03\x04");
    let what = if zip {
        "it is a zip archive, as a TorchScript model file is, not a YAML manifest"
    } else {
        "it is not text (a binary file, a TorchScript model?), not a YAML manifest"
    };
    let beside = path.with_extension("yaml");
    let this_one = if beside != path && beside.is_file() {
        format!(" (here, perhaps {})", beside.display())
    } else {
        String::new()
    };
    format!(
        "{what}; `manifest:` takes the <name>.yaml that scripts/export_zoo.py writes beside the \
         model{this_one}; to score a TorchScript file without one, give it as `path:` with \
         `name`, `input` and `layers`"
    )
}

/// How to make a missing manifest: the export command its file name suggests, under the
/// names scripts/export_zoo.py gives (`timm_` for timm, `_random` for random weights).
fn export_hint(path: &Path) -> String {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
    let Some(stem) =
        stem.filter(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
    else {
        return "export the model with scripts/export_zoo.py (`--help` lists its sources)".into();
    };
    let (base, random) = match stem.strip_suffix("_random") {
        Some(base) => (base, " --random"),
        None => (stem.as_str(), ""),
    };
    let (source, args) = if let Some(timm) = base.strip_prefix("timm_") {
        (format!("timm's `{timm}`"), format!("--timm {timm}"))
    } else if let Some(n) = base
        .strip_prefix("efficientnet_lite")
        .filter(|n| n.parse::<u8>().is_ok())
    {
        (
            format!("EfficientNet-Lite{n}"),
            format!("--efficientnet-lite {n}"),
        )
    } else {
        (
            format!("torchvision's `{base}`"),
            format!("--torchvision {base}"),
        )
    };
    let folder = path.parent().unwrap_or(Path::new("."));
    // export_zoo.py writes to the repository's zoo/ unless told otherwise.
    let default_folder = folder.file_name().is_some_and(|f| f == "zoo")
        && folder
            .parent()
            .is_some_and(|root| root.join("scripts/export_zoo.py").is_file());
    let out_dir = if default_folder {
        String::new()
    } else {
        format!(" --out-dir {}", folder.display())
    };
    format!(
        "export it with scripts/export_zoo.py; for {source}: `.venv/bin/python \
         scripts/export_zoo.py {args}{random}{out_dir}` (`--help` lists the other sources: \
         torchvision, timm, EfficientNet-Lite, your own module)"
    )
}

pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_known_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("abc");
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(
            sha256_file(&p).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_missing_manifest_suggests_the_export_command_its_name_implies() {
        let dir = tempfile::tempdir().unwrap();
        let hint = |name: &str| export_hint(&dir.path().join(name));
        let out = format!(" --out-dir {}`", dir.path().display());
        assert!(
            hint("resnet50.yaml").contains(&format!(
                "for torchvision's `resnet50`: `.venv/bin/python scripts/export_zoo.py \
                 --torchvision resnet50{out}"
            )),
            "{}",
            hint("resnet50.yaml")
        );
        for (name, args) in [
            ("timm_convnext_tiny.yaml", "--timm convnext_tiny"),
            (
                "efficientnet_lite0_random.yaml",
                "--efficientnet-lite 0 --random",
            ),
            ("resnet18_random.yaml", "--torchvision resnet18 --random"),
        ] {
            let got = hint(name);
            assert!(got.contains(&format!("export_zoo.py {args}{out}")), "{got}");
        }
        assert_eq!(
            hint("my model.yaml"),
            "export the model with scripts/export_zoo.py (`--help` lists its sources)"
        );
        // In the repository's own zoo/, the script's default folder: no --out-dir.
        let zoo = dir.path().join("zoo");
        std::fs::create_dir_all(dir.path().join("scripts")).unwrap();
        std::fs::write(dir.path().join("scripts/export_zoo.py"), "").unwrap();
        assert!(export_hint(&zoo.join("vit_b_16.yaml"))
            .contains("`.venv/bin/python scripts/export_zoo.py --torchvision vit_b_16` ("));
    }

    #[test]
    fn a_model_file_given_as_a_manifest_is_named_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let pt = dir.path().join("m.pt");
        std::fs::write(&pt, b"PK\x03\x04\xff\xfe binary").unwrap();
        let err = Manifest::load(&pt).unwrap_err().to_string();
        assert!(
            err.contains(
                "it is a zip archive, as a TorchScript model file is, not a YAML manifest"
            ),
            "{err}"
        );
        assert!(
            err.contains("the <name>.yaml that scripts/export_zoo.py writes beside the model; "),
            "{err}"
        );
        assert!(
            err.ends_with("give it as `path:` with `name`, `input` and `layers`"),
            "{err}"
        );
        std::fs::write(dir.path().join("m.yaml"), "name: m\n").unwrap();
        let err = Manifest::load(&pt).unwrap_err().to_string();
        assert!(
            err.contains(&format!(
                "beside the model (here, perhaps {}); ",
                dir.path().join("m.yaml").display()
            )),
            "{err}"
        );
    }

    /// A module handed to the Python package as an object: nobody says whether its weights
    /// are trained, and the manifest says so with null (or leaves the key out).
    #[test]
    fn pretrained_may_be_unknown() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("m.pt"), b"abc").unwrap();
        let text = |pretrained: &str| {
            format!(
                "name: m\nfile: m.pt\nsha256: ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n\
                 {pretrained}input: {{size: 32, resize: 32, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5]}}\nlayers: [a]\n"
            )
        };
        for (line, want) in [
            ("pretrained: null\n", None),
            ("", None),
            ("pretrained: false\n", Some(false)),
            ("pretrained: true\n", Some(true)),
        ] {
            let path = dir.path().join("m.yaml");
            std::fs::write(&path, text(line)).unwrap();
            assert_eq!(Manifest::load(&path).unwrap().pretrained, want, "{line}");
        }
    }
}
