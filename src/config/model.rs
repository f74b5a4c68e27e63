//! How a config names its models: inline (`path`, `input`, `layers`), through a manifest written
//! by scripts/export_zoo.py (`manifest:`), or as a whole folder of manifests (`zoo:`); and how it
//! picks layers: by name, or by selector (`stages`, `all`, timm-style stage indices).

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Default with a manifest: the manifest's name.
    pub name: Option<String>,
    /// A TorchScript file (without a manifest).
    pub path: Option<PathBuf>,
    /// A manifest (zoo/<name>.yaml) giving file, input and default layers.
    pub manifest: Option<PathBuf>,
    /// The input; with a manifest, only the keys given here override the manifest's.
    pub input: Option<InputPatch>,
    /// Default with a manifest: `stages`.
    pub layers: Option<LayerSelector>,
    /// How 4-D activations are laid out; default: the manifest's, else `nchw`.
    pub layout: Option<Layout>,
}

/// `zoo: ../zoo` or `zoo: {dir: ../zoo, include: [resnet*], exclude: [], layers: stages,
/// input: {size: 160}}`: every manifest in a folder whose model name matches.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZooConfig {
    pub dir: PathBuf,
    /// Globs on model names; default: all.
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Applied to every model of the folder; default `stages`.
    pub layers: Option<LayerSelector>,
    /// Applied to every model of the folder: the keys given override each manifest's, as a
    /// model entry's `input` does.
    pub input: Option<InputPatch>,
}

/// Accepts the folder alone as a string, or the full map.
pub(super) fn zoo_shorthand<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<ZooConfig>, D::Error> {
    let value = serde_yaml::Value::deserialize(d)?;
    match value {
        serde_yaml::Value::Null => Ok(None),
        serde_yaml::Value::String(dir) => Ok(Some(ZooConfig {
            dir: dir.into(),
            include: vec![],
            exclude: vec![],
            layers: None,
            input: None,
        })),
        other => serde_yaml::from_value(other)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InputConfig {
    /// Side of the square centre crop fed to the model.
    pub size: u32,
    /// The shorter side is resized to this before the crop; default: `size`.
    pub resize: Option<u32>,
    /// The resize filter; default bilinear.
    #[serde(default)]
    pub interpolation: Interpolation,
    pub mean: [f64; 3],
    pub std: [f64; 3],
}

/// `input:` as a config entry writes it: complete for a bare model file, or any subset of keys
/// to override a manifest's input.
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputPatch {
    pub size: Option<u32>,
    pub resize: Option<u32>,
    pub interpolation: Option<Interpolation>,
    pub mean: Option<[f64; 3]>,
    pub std: Option<[f64; 3]>,
}

impl InputPatch {
    /// These keys over `base` (a manifest's input), checked. A new `size` without a `resize`
    /// keeps the manifest's resize-to-crop ratio (`InputConfig::resize_for`), not its resize:
    /// a 96-px crop of a 256-px resize would show the model a detail, not the whole image.
    pub fn over(&self, base: Option<&InputConfig>) -> Result<InputConfig, String> {
        let missing = |key: &str| format!("`{key}` is missing (no manifest gives it)");
        let size = self
            .size
            .or(base.map(|b| b.size))
            .ok_or_else(|| missing("size"))?;
        let input = InputConfig {
            size,
            resize: self.resize.or(base.and_then(|b| b.resize_for(size))),
            interpolation: self
                .interpolation
                .or(base.map(|b| b.interpolation))
                .unwrap_or_default(),
            mean: self
                .mean
                .or(base.map(|b| b.mean))
                .ok_or_else(|| missing("mean"))?,
            std: self
                .std
                .or(base.map(|b| b.std))
                .ok_or_else(|| missing("std"))?,
        };
        input.check()?;
        Ok(input)
    }

    /// What `over` did to `base`'s resize that the user did not write, in words for the log:
    /// Some when this patch changes the size and the resize followed the manifest's ratio.
    pub fn scaled_resize(&self, base: &InputConfig) -> Option<String> {
        let size = self.size.filter(|s| *s != base.size)?;
        let (None, Some(resize)) = (self.resize, base.resize) else {
            return None;
        };
        let scaled = base.resize_for(size)?;
        Some(format!(
            "input size {size}, resize {scaled} (the manifest's {resize}/{} ratio; set \
             `input.resize` to choose another)",
            base.size
        ))
    }
}

impl InputConfig {
    pub fn resize_or_size(&self) -> u32 {
        self.resize.unwrap_or(self.size)
    }

    /// This input's resize for a crop of `size`, at the same resize-to-crop ratio:
    /// floor(size * resize / self.size), as timm's eval transform computes
    /// floor(size / crop_pct). None when this input does not resize.
    pub fn resize_for(&self, size: u32) -> Option<u32> {
        let resize = self.resize?;
        if size == self.size {
            return Some(resize);
        }
        let scaled = u64::from(size) * u64::from(resize) / u64::from(self.size.max(1));
        // Beyond u32, `check` refuses it as too large, naming the key.
        Some(u32::try_from(scaled).unwrap_or(u32::MAX))
    }

    /// Checks the values; the message names the key at fault.
    pub fn check(&self) -> Result<(), String> {
        if self.size == 0 || self.size > 8192 {
            return Err(format!(
                "`size` must be between 1 and 8192, got {}",
                self.size
            ));
        }
        if let Some(resize) = self.resize {
            if resize < self.size || resize > 16384 {
                return Err(format!(
                    "`resize` ({resize}) must be at least `size` ({}) and at most 16384",
                    self.size
                ));
            }
        }
        if self.mean.iter().any(|m| !m.is_finite()) {
            return Err("`mean` must hold three finite numbers".into());
        }
        if self.std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err("`std` must hold three positive numbers".into());
        }
        Ok(())
    }
}

/// In words, as messages show it: `size 96, resize 109, bilinear, mean [..], std [..]`.
impl fmt::Display for InputConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let resize = match self.resize {
            Some(r) => format!("resize {r}"),
            None => format!("resize {} (its default, the size)", self.size),
        };
        let interpolation = match self.interpolation {
            Interpolation::Bilinear => "bilinear",
            Interpolation::Bicubic => "bicubic",
            Interpolation::Nearest => "nearest",
        };
        write!(
            f,
            "size {}, {resize}, {interpolation}, mean {:?}, std {:?}",
            self.size, self.mean, self.std
        )
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layout::Nchw => "nchw",
            Layout::Nhwc => "nhwc",
        })
    }
}

/// A statistics key's preprocessing (`ModelKey::preprocessing`, written as the Rust debug text
/// of the input and the layout, `InputConfig { size: 96, .. } Nchw`) in words, for messages.
/// The key stays as it is: cache entries are named by its hash. Unreadable text is returned
/// unchanged.
pub fn preprocessing_in_words(key: &str) -> String {
    let parsed = key
        .strip_prefix("InputConfig { ")
        .and_then(|rest| rest.rsplit_once(" } "))
        .and_then(|(fields, layout)| {
            // The debug text is a YAML flow mapping once `Some(x)` is x, `None` null, and the
            // enum variants lower case, as serde names them.
            let fields = fields
                .to_lowercase()
                .replace("some(", "")
                .replace(')', "")
                .replace("none", "null");
            let input: InputConfig = serde_yaml::from_str(&format!("{{{fields}}}")).ok()?;
            let layout: Layout = serde_yaml::from_str(&layout.to_lowercase()).ok()?;
            Some(format!("{input}, layout {layout}"))
        });
    parsed.unwrap_or_else(|| key.to_owned())
}

/// The resize filter: PIL's bilinear and bicubic (antialiased when shrinking), or nearest.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Interpolation {
    #[default]
    Bilinear,
    Bicubic,
    Nearest,
}

/// The layout of 4-D activations: (N, C, H, W) for convolutional networks, (N, H, W, C) for
/// some transformers (torchvision's Swin), so pooling averages the right axes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    #[default]
    Nchw,
    Nhwc,
}

/// Which layers of a model to score.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerSelector {
    /// The manifest's stage outputs.
    Stages,
    /// Every block: each tappable submodule that has submodules of its own.
    All,
    /// Names (`layer3`, `block.relu#2`) and stage indices (`-1` the last stage), in order.
    List(Vec<LayerItem>),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LayerItem {
    Name(String),
    /// Python-style index into the manifest's stages.
    Stage(i64),
}

impl<'de> Deserialize<'de> for LayerSelector {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        use serde_yaml::Value;
        let item = |v: &Value| match v {
            Value::String(s) => Ok(LayerItem::Name(s.clone())),
            Value::Number(n) if n.is_i64() => Ok(LayerItem::Stage(n.as_i64().unwrap_or_default())),
            other => Err(D::Error::custom(format!(
                "a layer is a submodule name or a stage index, got {}",
                serde_yaml::to_string(other).unwrap_or_default().trim()
            ))),
        };
        match Value::deserialize(d)? {
            Value::String(s) if s == "stages" => Ok(LayerSelector::Stages),
            Value::String(s) if s == "all" => Ok(LayerSelector::All),
            Value::Sequence(items) => items
                .iter()
                .map(item)
                .collect::<Result<_, _>>()
                .map(LayerSelector::List),
            single => Ok(LayerSelector::List(vec![item(&single)?])),
        }
    }
}
