//! One model of the zoo: load, tap, normalise, run.

use std::path::{Path, PathBuf};

use tch::{Device, Kind, Tensor};

use super::model_hints::{explain_forward, layout_warning};
use super::module_cache::{ModuleCache, ModuleKey, Prepared};
use super::source_logits::SourceLogits;
use super::spec::ModelSpec;
use crate::config::{Layout, Precision};
use crate::dataset::Geometry;
use crate::error::{Error, Result};
use crate::taps::{self, TapModule};

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
    /// Whether TorchScript optimised its module for inference (see `ready`).
    pub optimized: bool,
    /// Whether its rewritten module came from the module cache.
    pub cached_module: bool,
    /// Parameter elements fine-tuning re-trains above each layer (see `capacity`); None where
    /// the listing cannot place the layer.
    pub params_after: Vec<Option<u64>>,
    module: TapModule,
    /// Taps in `module`: the layers, then the head when it gives the source logits.
    taps: usize,
    /// The floating-point kind the module runs in.
    kind: Kind,
    /// (1, 3, 1, 1) on the device.
    mean: Tensor,
    std: Tensor,
}

/// What one forward pass gives: one pooled (B, D) f32 tensor per requested layer, and the
/// source logits (B, C_s) when they are wanted and exist.
pub struct Features {
    pub layers: Vec<Tensor>,
    pub source: Option<Tensor>,
}

/// The model at `path` rewritten to return `layers` too, loaded on `device` in eval mode.
pub(super) fn load_tapped(
    name: &str,
    path: &Path,
    layers: &[String],
    device: Device,
) -> Result<TapModule> {
    TapModule::load(name, &taps::rewrite(name, path, layers)?, device)
}

/// A module ready for the pass, and what was decided on the way.
pub(super) struct Ready {
    pub module: TapModule,
    /// Whether its Conv2d-BatchNorm2d pairs run folded.
    pub batchnorm_folded: bool,
    /// Whether TorchScript optimised it for inference (see `ready`).
    pub optimized: bool,
    /// The chosen module's serialized bytes, before the precision change and the optimisation:
    /// what the module cache keeps (empty when not asked for).
    pub bytes: Vec<u8>,
    /// The model file's submodules, as `taps::layers` lists them (empty for a kept module).
    pub listing: Vec<taps::LayerInfo>,
}

/// As `load_tapped`, made fast for the pass: Conv2d-BatchNorm2d pairs folded where that
/// provably changes nothing but rounding, then `ready`.
///
/// TorchScript's folding pass works on every method of every submodule and rewrites shared
/// convolution weights, so a pair folded in a method the taps do not use can leave a tapped,
/// unfolded BatchNorm applied twice. So the folded module is kept only if it agrees with the
/// unfolded one, to 1e-3 of each output's scale, on a probe batch of `size` x `size` images.
///
/// That is a property of the graph, not of the device, so it is decided on the CPU in exact f32
/// before the module moves. Checked on a GPU, every ResNet-50 stayed unfolded, its BatchNorm
/// kernels taking GPU time in every batch (docs/performance.md, "GPU"): cuDNN's TF32
/// convolutions, rounding the folded and unfolded weights differently through 50 layers, are
/// the likely cause.
pub(super) fn load_for_inference(
    spec: &ModelSpec,
    layers: &[String],
    device: Device,
    precision: Precision,
    keep_bytes: bool,
) -> Result<Ready> {
    let (name, size) = (spec.name.as_str(), spec.input.size);
    let taps::Rewritten {
        plain,
        folded,
        layers: listing,
    } = taps::prepare(name, &spec.path, layers)?;
    let cpu = Device::Cpu;
    let (mut module, batchnorm_folded) = match folded {
        Some(folded) if agrees(name, &plain, &folded, layers.len(), size, cpu, None)? => {
            (folded, true)
        }
        _ => {
            tracing::debug!(
                model = name,
                "folding BatchNorms would change the taps; running unfolded"
            );
            (plain, false)
        }
    };
    if device != cpu {
        module.to(name, device, None)?;
    }
    let bytes = if keep_bytes {
        module.save(name)?
    } else {
        Vec::new()
    };
    let shape = (spec.layout, layers.len(), size);
    let (module, optimized) = ready(name, module, device, precision, shape, None)?;
    Ok(Ready {
        module,
        batchnorm_folded,
        optimized,
        bytes,
        listing,
    })
}

/// The model with only its own output, as the pass would run it (folded, in `precision`,
/// optimised where `ready` optimises): the forward-pass yardstick's model.
pub fn inference_module(
    spec: &ModelSpec,
    device: Device,
    precision: Precision,
) -> Result<TapModule> {
    Ok(load_for_inference(spec, &[], device, precision, false)?.module)
}

/// A loaded f32 module made ready to run in `precision`. On the CPU in f32 it is also frozen
/// and optimised by TorchScript (oneDNN convolutions whose weights are packed once rather than
/// at every call: docs/performance.md, "oneDNN packing") where the shim expects a gain, and kept only if its pooled taps agree with the
/// module as loaded on the probe batch. Returns whether it was optimised.
///
/// Not on a GPU: what TorchScript's optimisation does for cuDNN has not been measured there.
/// `shape`: the taps' layout, their number, and the probe's image size. `known`: the verdict of
/// an earlier load of the same module (the module cache's), which the probe need not repeat.
fn ready(
    name: &str,
    mut module: TapModule,
    device: Device,
    precision: Precision,
    (layout, taps, size): (Layout, usize, u32),
    known: Option<bool>,
) -> Result<(TapModule, bool)> {
    if precision != Precision::F32 {
        module.to(name, device, Some(precision.kind()))?;
        return Ok((module, false));
    }
    if device != Device::Cpu {
        return Ok((module, false));
    }
    if known == Some(false) {
        return Ok((module, false));
    }
    // Taps laid out (N, H, W, C) would be averaged over the wrong dimensions in the graph.
    let pooled = (layout == Layout::Nchw).then_some(layout);
    let why = match module.optimized(name, pooled.is_some(), true) {
        Ok(Ok(optimized)) if known == Some(true) => return Ok((optimized, true)),
        Ok(Ok(optimized)) => match agrees(name, &module, &optimized, taps, size, device, pooled) {
            Ok(true) => return Ok((optimized, true)),
            Ok(false) => "it would change the taps".to_owned(),
            Err(e) => e.to_string(),
        },
        Ok(Err(why)) => why,
        Err(e) => e.to_string(),
    };
    tracing::debug!(model = name, "not optimised for inference: {why}");
    Ok((module, false))
}

/// Whether two versions of a tapped module give the same outputs on a fixed probe batch; with
/// `pooled`, the same taps once pooled (as the pass pools them) rather than as captured.
fn agrees(
    name: &str,
    a: &TapModule,
    b: &TapModule,
    taps: usize,
    size: u32,
    device: Device,
    pooled: Option<Layout>,
) -> Result<bool> {
    let s = size as i64;
    let probe = Tensor::f_arange(2 * 3 * s * s, (Kind::Float, device))
        .and_then(|t| t.f_mul_scalar(0.37)?.f_sin()?.f_view([2, 3, s, s]))
        .map_err(|e| Error::torch(name, "making the probe input", e))?;
    let (out_a, mut taps_a) = a.run(name, &probe, taps)?;
    let (out_b, mut taps_b) = b.run(name, &probe, taps)?;
    if let Some(layout) = pooled {
        let pool_all = |captured: Vec<Tensor>| -> Result<Option<Vec<Tensor>>> {
            captured
                .iter()
                .map(|t| taps::pool(t, layout).transpose())
                .collect::<Result<Option<Vec<_>>, _>>()
                .map_err(|e| Error::torch(name, "pooling the probe", e))
        };
        match (pool_all(taps_a)?, pool_all(taps_b)?) {
            (Some(a), Some(b)) => (taps_a, taps_b) = (a, b),
            _ => return Ok(false),
        }
    }
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
            let read = std::time::Instant::now();
            if let Some((bytes, prepared)) = cache.get(key) {
                let read_s = read.elapsed().as_secs_f64();
                match Self::from_prepared(spec, device, precision, &bytes, prepared) {
                    Ok(model) => {
                        tracing::debug!(
                            "loaded the cached rewritten module ({:.3} s reading and checking it)",
                            read_s
                        );
                        return Ok(model);
                    }
                    Err(e) => tracing::warn!(
                        "the cached rewritten module of {} is unusable ({e}); rewriting it",
                        spec.name
                    ),
                }
            }
        }
        let (model, bytes) = Self::prepare(spec, device, want_source, precision, keyed.is_some())
            .map_err(|e| explain_forward(spec, e))?;
        if let Some((cache, key)) = &keyed {
            let prepared = Prepared {
                key: ModuleCache::key_text(key),
                batchnorm_folded: model.batchnorm_folded,
                taps: model.taps,
                source: model.source.clone(),
                params_after: model.params_after.clone(),
                probe: model.probe_values(),
                optimized: Some(model.optimized),
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
        let t = std::time::Instant::now();
        let loaded = TapModule::load(&spec.name, bytes, device)?;
        let load_s = t.elapsed().as_secs_f64();
        let shape = (spec.layout, prepared.taps, spec.input.size);
        let (module, optimized) = ready(
            &spec.name,
            loaded,
            device,
            precision,
            shape,
            prepared.optimized,
        )?;
        tracing::debug!(
            "kept module: {load_s:.3} s deserialising it onto the device, {:.3} s readying it",
            t.elapsed().as_secs_f64() - load_s
        );
        let mut model = Self::assemble(
            spec,
            device,
            precision,
            Ready {
                module,
                batchnorm_folded: prepared.batchnorm_folded,
                optimized,
                bytes: Vec::new(),
                listing: Vec::new(),
            },
            prepared.params_after,
        )?;
        model.taps = prepared.taps;
        model.source = prepared.source;
        model.cached_module = true;
        match prepared.probe {
            Some(probe) if probe.len() == spec.layers.len() => model.with_probe(&probe),
            _ => model.probed(),
        }
    }

    /// A model with its module and the decisions about it; not yet probed.
    fn assemble(
        spec: &ModelSpec,
        device: Device,
        precision: Precision,
        ready: Ready,
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
            batchnorm_folded: ready.batchnorm_folded,
            optimized: ready.optimized,
            cached_module: false,
            params_after,
            module: ready.module,
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
    /// returns the chosen module's bytes with `keep_bytes`.
    fn prepare(
        spec: &ModelSpec,
        device: Device,
        want_source: bool,
        precision: Precision,
        keep_bytes: bool,
    ) -> Result<(ZooModel, Vec<u8>)> {
        let mut ready = load_for_inference(spec, &spec.layers, device, precision, keep_bytes)?;
        let mut bytes = std::mem::take(&mut ready.bytes);
        let listing = std::mem::take(&mut ready.listing);
        let params_after = spec
            .layers
            .iter()
            .map(|l| super::capacity::params_after(&listing, l))
            .collect();
        let mut model = Self::assemble(spec, device, precision, ready, params_after)?;
        let blank = model.blank(device)?;
        let (output, _) = model.module.run(&spec.name, &blank, model.taps)?;
        if want_source {
            model.source = match (logit_classes(output.as_ref()), &spec.head) {
                (Some(classes), _) => SourceLogits::Output { classes },
                (None, Some(head)) => {
                    let mut taps = spec.layers.clone();
                    taps.push(head.clone());
                    let headed = load_for_inference(spec, &taps, device, precision, keep_bytes)?;
                    let (_, tapped) = headed.module.run(&spec.name, &blank, taps.len())?;
                    match logit_classes(tapped.last()) {
                        Some(classes) => {
                            model.module = headed.module;
                            model.batchnorm_folded = headed.batchnorm_folded;
                            model.optimized = headed.optimized;
                            model.taps = taps.len();
                            bytes = headed.bytes;
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

    /// The probe's features as kept in the module cache (None if they cannot be read back).
    fn probe_values(&self) -> Option<Vec<Vec<f32>>> {
        self.probe
            .iter()
            .map(|t| Vec::<f32>::try_from(t.f_to_kind(Kind::Float).ok()?).ok())
            .collect()
    }

    /// The model with the probe's features kept from an earlier load, on its device.
    fn with_probe(mut self, probe: &[Vec<f32>]) -> Result<ZooModel> {
        let device = self.mean.device();
        self.probe = probe
            .iter()
            .map(|v| Tensor::f_from_slice(v).and_then(|t| t.f_to_device(device)))
            .collect::<Result<_, _>>()
            .map_err(|e| Error::torch(&self.name, "placing the kept probe on the device", e))?;
        self.dims = probe.iter().map(Vec::len).collect();
        tracing::debug!(dims = ?self.dims, source = ?self.source, "probe kept");
        Ok(self)
    }

    /// Probes the layers' widths, and where their features sit, with one blank image.
    fn probed(mut self) -> Result<ZooModel> {
        let blank = self.blank(self.mean.device())?;
        let (_, raw) = self.module.run(&self.name, &blank, self.taps)?;
        for (layer, t) in self.layers.iter().zip(&raw) {
            if let Some(warning) = layout_warning(&t.size(), self.layout) {
                tracing::warn!("model `{}` layer `{layer}`: {warning}", self.name);
            }
        }
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
        // In place after the first op: the same arithmetic, one fresh batch-sized tensor
        // instead of two.
        x.f_sub(&self.mean)
            .and_then(|mut t| t.f_div_(&self.std))
            .and_then(|t| t.f_to_kind(self.kind))
            .map_err(|e| Error::torch(&self.name, "normalising the batch", e))
    }

    /// One forward pass on a normalised batch; every tap pooled to (B, D) on the device.
    pub fn run(&self, x: &Tensor) -> Result<Features> {
        let (output, mut tapped) = self.module.run(&self.name, x, self.taps)?;
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
