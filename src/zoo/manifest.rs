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
    pub pretrained: bool,
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
        let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
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
        let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
        let value: serde_yaml::Value =
            serde_yaml::from_str(&text).map_err(|e| err(e.to_string()))?;
        let name = value
            .get("name")
            .and_then(|n| n.as_str())
            .map(str::to_owned);
        Ok(name.filter(|_| value.get("sha256").is_some()))
    }

    fn remake_hint(&self) -> String {
        match &self.export_command {
            Some(cmd) => format!("export it again with: {cmd}"),
            None => "export it again with scripts/export_zoo.py".to_owned(),
        }
    }
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
}
