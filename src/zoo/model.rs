//! One model of the zoo: load, tap, normalise, run.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use tch::{CModule, Device, IValue, Kind, Tensor};

use super::module_cache::{ModuleCache, ModuleKey, Prepared};
use super::ModelSpec;
use crate::config::{Layout, Precision};
use crate::dataset::Geometry;
use crate::error::{Error, Result};
use crate::taps;

pub struct ZooModel {
    pub name: String,
    pub path: PathBuf,
    pub layers: Vec<String>,
    pub geometry: Geometry,
    pub layout: Layout,
    /// Length of the pooled feature vector of each layer, found by a probe forward pass.
    pub dims: Vec<usize>,
    /// The pooled features of one blank image, per layer, (D,) on the device: where the
    /// features sit, the shift about which their statistics are summed.
    pub probe: Vec<Tensor>,
    /// Where the source task's logits come from, if they are wanted.
    pub source: SourceLogits,
    /// Whether its Conv2d-BatchNorm2d pairs run folded (see `load_for_inference`).
    pub batchnorm_folded: bool,
    /// Whether its rewritten module came from the module cache.
    pub cached_module: bool,
    /// Parameter elements fine-tuning re-trains above each layer (see `capacity`); None where
    /// the listing cannot place the layer.
    pub params_after: Vec<Option<u64>>,
    module: CModule,
    /// Taps in `module`: the layers, then the head when it gives the source logits.
    taps: usize,
    /// The floating-point kind the module runs in.
    kind: Kind,
    /// (1, 3, 1, 1) on the device.
    mean: Tensor,
    std: Tensor,
}

/// Where a model's source-task logits (a (B, C_s) tensor, for NCE and LEEP) come from.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceLogits {
    /// Not asked for.
    Unwanted,
    /// The model's own output.
    Output { classes: usize },
    /// The manifest's `head` submodule, tapped.
    Head { classes: usize },
    /// Neither is a 2-D tensor: why, for the report.
    Missing(String),
}

impl SourceLogits {
    pub fn classes(&self) -> Option<usize> {
        match self {
            SourceLogits::Output { classes } | SourceLogits::Head { classes } => Some(*classes),
            _ => None,
        }
    }
}

/// What one forward pass gives: one pooled (B, D) f32 tensor per requested layer, and the
/// source logits (B, C_s) when they are wanted and exist.
pub struct Features {
    pub layers: Vec<Tensor>,
    pub source: Option<Tensor>,
}

const METHOD: &str = "forward_taps";

/// The model at `path` rewritten to return `layers` too, loaded on `device` in eval mode.
pub(super) fn load_tapped(
    name: &str,
    path: &Path,
    layers: &[String],
    device: Device,
) -> Result<CModule> {
    load_bytes(name, &taps::rewrite(name, path, layers)?, device)
}

fn load_bytes(name: &str, bytes: &[u8], device: Device) -> Result<CModule> {
    let mut module = CModule::load_data_on_device(&mut Cursor::new(bytes), device)
        .map_err(|e| Error::torch(name, "loading the rewritten module", e))?;
    // Scripted models read `training` at run time.
    module
        .f_set_eval()
        .map_err(|e| Error::torch(name, "switching to eval mode", e))?;
    Ok(module)
}

/// As `load_tapped`, made fast for the pass: Conv2d-BatchNorm2d pairs folded where that
/// provably changes nothing but rounding, and the parameters in `precision`.
///
/// TorchScript's folding pass works on every method of every submodule and rewrites shared
/// convolution weights, so a pair folded in a method the taps do not use can leave a tapped,
/// unfolded BatchNorm applied twice. So the folded module is kept only if it agrees with the
/// unfolded one, to 1e-3 of each output's scale, on a probe batch of `size` x `size` images.
/// Also returns the chosen module's serialized bytes (before the precision change), for the
/// module cache.
pub(super) fn load_for_inference(
    name: &str,
    path: &Path,
    layers: &[String],
    device: Device,
    precision: Precision,
    size: u32,
) -> Result<(CModule, bool, Vec<u8>)> {
    let plain_bytes = taps::rewrite(name, path, layers)?;
    let plain = load_bytes(name, &plain_bytes, device)?;
    let folded = taps::rewrite_for_inference(name, path, layers)
        .and_then(|b| Ok((load_bytes(name, &b, device)?, b)));
    let (mut module, is_folded, bytes) = match folded {
        Ok((folded, b)) if agrees(name, &plain, &folded, layers.len(), size, device)? => {
            (folded, true, b)
        }
        _ => {
            tracing::debug!(
                model = name,
                "folding BatchNorms would change the taps; running unfolded"
            );
            (plain, false, plain_bytes)
        }
    };
    to_precision(name, &mut module, device, precision)?;
    Ok((module, is_folded, bytes))
}

/// Converts the parameters of a module loaded in f32.
fn to_precision(
    name: &str,
    module: &mut CModule,
    device: Device,
    precision: Precision,
) -> Result<()> {
    if precision != Precision::F32 {
        // tch's CModule::to panics where libtorch refuses; turn that into an error.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            module.to(device, precision.kind(), false)
        }))
        .map_err(|_| Error::Torch {
            model: name.to_owned(),
            context: "converting the parameters",
            message: format!("libtorch cannot run it in {precision:?}"),
        })?;
    }
    Ok(())
}

/// Whether two versions of a tapped module give the same outputs on a fixed probe batch.
fn agrees(
    name: &str,
    a: &CModule,
    b: &CModule,
    taps: usize,
    size: u32,
    device: Device,
) -> Result<bool> {
    let s = size as i64;
    let probe = Tensor::f_arange(2 * 3 * s * s, (Kind::Float, device))
        .and_then(|t| t.f_mul_scalar(0.37)?.f_sin()?.f_view([2, 3, s, s]))
        .map_err(|e| Error::torch(name, "making the probe input", e))?;
    let (out_a, taps_a) = run_tapped(name, a, &probe, taps)?;
    let (out_b, taps_b) = run_tapped(name, b, &probe, taps)?;
    let close = |x: &Tensor, y: &Tensor| -> Result<bool, tch::TchError> {
        let scale = x.f_abs()?.f_max()?.f_double_value(&[])?.max(1e-12);
        let diff = x.f_sub(y)?.f_abs()?.f_max()?.f_double_value(&[])?;
        Ok(diff <= 1e-3 * scale)
    };
    let pairs = taps_a
        .iter()
        .zip(&taps_b)
        .chain(out_a.iter().zip(out_b.iter()));
    for (x, y) in pairs {
        if x.size() != y.size()
            || !close(x, y).map_err(|e| Error::torch(name, "comparing the probe", e))?
        {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Runs `forward_taps`: the model output (if a tensor) and the raw tap tensors, in order.
pub(super) fn run_tapped(
    name: &str,
    module: &CModule,
    x: &Tensor,
    taps: usize,
) -> Result<(Option<Tensor>, Vec<Tensor>)> {
    let internal = |message: &str| Error::Torch {
        model: name.to_owned(),
        context: "running forward_taps",
        message: message.to_owned(),
    };
    let out = tch::no_grad(|| module.method_is(METHOD, &[IValue::Tensor(x.shallow_clone())]))
        .map_err(|e| Error::torch(name, "forward pass", e))?;
    let IValue::Tuple(mut items) = out else {
        return Err(internal("the rewritten forward did not return a tuple"));
    };
    if items.len() != taps + 1 {
        return Err(internal(
            "the rewritten forward returned the wrong number of values",
        ));
    }
    let tapped = items
        .split_off(1)
        .into_iter()
        .map(|v| match v {
            IValue::Tensor(t) => Ok(t),
            _ => Err(internal("a tap is not a tensor")),
        })
        .collect::<Result<Vec<_>>>()?;
    let output = match items.pop() {
        Some(IValue::Tensor(t)) => Some(t),
        _ => None,
    };
    Ok((output, tapped))
}

impl ZooModel {
    /// Rewrites the file for the requested layers, loads it on `device`, and probes the layers'
    /// shapes with one blank image, so shape errors surface before the pass starts. With
    /// `want_source`, also finds the source logits: the model's output if it is (B, C_s), else
    /// the manifest's `head`.
    pub fn load(
        spec: &ModelSpec,
        device: Device,
        want_source: bool,
        precision: Precision,
    ) -> Result<ZooModel> {
        Self::load_with(spec, device, want_source, precision, None)
    }

    /// As `load`, through a module cache when given one with the model file's sha256: a kept
    /// module loads directly; a new one is kept for the next run.
    pub fn load_with(
        spec: &ModelSpec,
        device: Device,
        want_source: bool,
        precision: Precision,
        cache: Option<(&ModuleCache, &str)>,
    ) -> Result<ZooModel> {
        let _span = tracing::info_span!("load", model = %spec.name).entered();
        let precision_name = format!("{precision:?}").to_lowercase();
        let device_kind = crate::device::kind(device);
        let keyed = cache.map(|(cache, sha256)| {
            (
                cache,
                ModuleKey {
                    name: &spec.name,
                    sha256,
                    layers: &spec.layers,
                    head: spec.head.as_deref(),
                    want_source,
                    precision: &precision_name,
                    device_kind: &device_kind,
                    size: spec.input.size,
                },
            )
        });
        if let Some((cache, key)) = &keyed {
            if let Some((bytes, prepared)) = cache.get(key) {
                match Self::from_prepared(spec, device, precision, &bytes, prepared) {
                    Ok(model) => {
                        tracing::debug!("loaded the cached rewritten module");
                        return Ok(model);
                    }
                    Err(e) => tracing::warn!(
                        "the cached rewritten module of {} is unusable ({e}); rewriting it",
                        spec.name
                    ),
                }
            }
        }
        let (model, bytes) = Self::prepare(spec, device, want_source, precision)?;
        if let Some((cache, key)) = &keyed {
            let prepared = Prepared {
                key: ModuleCache::key_text(key),
                batchnorm_folded: model.batchnorm_folded,
                taps: model.taps,
                source: model.source.clone(),
                params_after: model.params_after.clone(),
            };
            cache.put(key, &bytes, &prepared);
        }
        Ok(model)
    }

    /// The model from a kept module and the decisions made when it was first prepared.
    fn from_prepared(
        spec: &ModelSpec,
        device: Device,
        precision: Precision,
        bytes: &[u8],
        prepared: Prepared,
    ) -> Result<ZooModel> {
        let expected =
            spec.layers.len() + usize::from(matches!(prepared.source, SourceLogits::Head { .. }));
        if prepared.taps != expected || prepared.params_after.len() != spec.layers.len() {
            return Err(Error::Torch {
                model: spec.name.clone(),
                context: "loading the cached module",
                message: "its taps do not match the layers".into(),
            });
        }
        let mut module = load_bytes(&spec.name, bytes, device)?;
        to_precision(&spec.name, &mut module, device, precision)?;
        let mut model = Self::assemble(
            spec,
            device,
            precision,
            module,
            prepared.batchnorm_folded,
            prepared.params_after,
        )?;
        model.taps = prepared.taps;
        model.source = prepared.source;
        model.cached_module = true;
        model.probed()
    }

    /// A model with its module and the decisions about it; not yet probed.
    fn assemble(
        spec: &ModelSpec,
        device: Device,
        precision: Precision,
        module: CModule,
        batchnorm_folded: bool,
        params_after: Vec<Option<u64>>,
    ) -> Result<ZooModel> {
        let to_dev = |v: [f64; 3]| {
            Tensor::f_from_slice(&v.map(|x| x as f32))
                .and_then(|t| t.f_view([1, 3, 1, 1]))
                .and_then(|t| t.f_to_device(device))
                .map_err(|e| Error::torch(&spec.name, "placing mean/std on the device", e))
        };
        Ok(ZooModel {
            name: spec.name.clone(),
            path: spec.path.clone(),
            layers: spec.layers.clone(),
            geometry: Geometry::of(&spec.input),
            layout: spec.layout,
            dims: Vec::new(),
            probe: Vec::new(),
            source: SourceLogits::Unwanted,
            batchnorm_folded,
            cached_module: false,
            params_after,
            module,
            taps: spec.layers.len(),
            kind: precision.kind(),
            mean: to_dev(spec.input.mean)?,
            std: to_dev(spec.input.std)?,
        })
    }

    /// A blank image of this model's geometry, in its precision, on `device`.
    fn blank(&self, device: Device) -> Result<Tensor> {
        let s = self.geometry.size as i64;
        Tensor::f_zeros([1, 3, s, s], (self.kind, device))
            .map_err(|e| Error::torch(&self.name, "making the probe input", e))
    }

    /// Rewrites, folds and checks the module, finds the source logits, and probes; also
    /// returns the chosen module's bytes.
    fn prepare(
        spec: &ModelSpec,
        device: Device,
        want_source: bool,
        precision: Precision,
    ) -> Result<(ZooModel, Vec<u8>)> {
        let (module, batchnorm_folded, mut bytes) = load_for_inference(
            &spec.name,
            &spec.path,
            &spec.layers,
            device,
            precision,
            spec.input.size,
        )?;
        let listing = crate::taps::layers(&spec.path)?;
        let params_after = spec
            .layers
            .iter()
            .map(|l| super::params_after(&listing, l))
            .collect();
        let mut model = Self::assemble(
            spec,
            device,
            precision,
            module,
            batchnorm_folded,
            params_after,
        )?;
        let blank = model.blank(device)?;
        let (output, _) = run_tapped(&spec.name, &model.module, &blank, model.taps)?;
        if want_source {
            model.source = match (logit_classes(output.as_ref()), &spec.head) {
                (Some(classes), _) => SourceLogits::Output { classes },
                (None, Some(head)) => {
                    let mut taps = spec.layers.clone();
                    taps.push(head.clone());
                    let (module, folded, head_bytes) = load_for_inference(
                        &spec.name,
                        &spec.path,
                        &taps,
                        device,
                        precision,
                        spec.input.size,
                    )?;
                    let (_, tapped) = run_tapped(&spec.name, &module, &blank, taps.len())?;
                    match logit_classes(tapped.last()) {
                        Some(classes) => {
                            model.module = module;
                            model.batchnorm_folded = folded;
                            model.taps = taps.len();
                            bytes = head_bytes;
                            SourceLogits::Head { classes }
                        }
                        None => SourceLogits::Missing(format!(
                            "its head `{head}` does not give (N, classes) logits"
                        )),
                    }
                }
                (None, None) => SourceLogits::Missing(format!(
                    "its output is not (N, classes) logits ({}) and no manifest names its head",
                    output.map_or("not a tensor".to_owned(), |t| format!(
                        "shape {:?}",
                        t.size()
                    ))
                )),
            };
        }
        Ok((model.probed()?, bytes))
    }

    /// Probes the layers' widths, and where their features sit, with one blank image.
    fn probed(mut self) -> Result<ZooModel> {
        let blank = self.blank(self.mean.device())?;
        let probe = self.run(&blank)?;
        self.dims = probe.layers.iter().map(|t| t.size()[1] as usize).collect();
        self.probe = probe
            .layers
            .iter()
            .map(|t| {
                t.f_select(0, 0)
                    .map_err(|e| Error::torch(&self.name, "probing", e))
            })
            .collect::<Result<_>>()?;
        tracing::debug!(dims = ?self.dims, source = ?self.source, "probed");
        Ok(self)
    }

    /// (B, 3, H, W) in [0, 1] -> normalised with this model's mean and std.
    pub fn normalise(&self, x: &Tensor) -> Result<Tensor> {
        x.f_sub(&self.mean)
            .and_then(|t| t.f_div(&self.std))
            .and_then(|t| t.f_to_kind(self.kind))
            .map_err(|e| Error::torch(&self.name, "normalising the batch", e))
    }

    /// One forward pass on a normalised batch; every tap pooled to (B, D) on the device.
    pub fn run(&self, x: &Tensor) -> Result<Features> {
        let (output, mut tapped) = run_tapped(&self.name, &self.module, x, self.taps)?;
        let source = match self.source {
            SourceLogits::Output { .. } => output,
            SourceLogits::Head { .. } => tapped.pop(),
            SourceLogits::Unwanted | SourceLogits::Missing(_) => None,
        };
        let mut layers = Vec::with_capacity(self.layers.len());
        for (name, t) in self.layers.iter().zip(tapped) {
            let pooled = taps::pool(&t, self.layout).ok_or_else(|| Error::UnsupportedShape {
                model: self.name.clone(),
                layer: name.clone(),
                shape: t.size(),
            })?;
            layers.push(pooled.map_err(|e| Error::torch(&self.name, "pooling a tap", e))?);
        }
        Ok(Features { layers, source })
    }
}

/// The number of classes of a (N, classes) floating-point tensor.
fn logit_classes(t: Option<&Tensor>) -> Option<usize> {
    let t = t?;
    (t.dim() == 2 && t.is_floating_point()).then(|| t.size()[1] as usize)
}
