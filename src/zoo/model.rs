//! One model of the zoo: load, tap, normalise, run.

use std::io::Cursor;
use std::path::PathBuf;

use tch::{CModule, Device, IValue, Kind, Tensor};

use crate::config::ModelConfig;
use crate::dataset::Geometry;
use crate::error::{Error, Result};
use crate::taps;

pub struct ZooModel {
    pub name: String,
    pub path: PathBuf,
    pub layers: Vec<String>,
    pub geometry: Geometry,
    /// Length of the pooled feature vector of each layer, found by a probe forward pass.
    pub dims: Vec<usize>,
    module: CModule,
    /// (1, 3, 1, 1) on the device.
    mean: Tensor,
    std: Tensor,
}

/// What one forward pass gives: the model's own output when it is a tensor (source logits for
/// metrics that need them), and one pooled (B, D) f32 tensor per requested layer.
pub struct Features {
    pub output: Option<Tensor>,
    pub layers: Vec<Tensor>,
}

const METHOD: &str = "forward_taps";

impl ZooModel {
    /// Rewrites the file for the requested layers, loads it on `device`, and probes the layers'
    /// shapes with one blank image, so shape errors surface before the pass starts.
    pub fn load(cfg: &ModelConfig, device: Device) -> Result<ZooModel> {
        let span = tracing::info_span!("load", model = %cfg.name);
        let _enter = span.enter();
        let bytes = taps::rewrite(&cfg.name, &cfg.path, &cfg.layers)?;
        let mut module = CModule::load_data_on_device(&mut Cursor::new(bytes), device)
            .map_err(|e| Error::torch(&cfg.name, "loading the rewritten module", e))?;
        module
            .f_set_eval()
            .map_err(|e| Error::torch(&cfg.name, "switching to eval mode", e))?;
        let to_dev = |v: [f64; 3]| {
            Tensor::f_from_slice(&v.map(|x| x as f32))
                .and_then(|t| t.f_view([1, 3, 1, 1]))
                .and_then(|t| t.f_to_device(device))
                .map_err(|e| Error::torch(&cfg.name, "placing mean/std on the device", e))
        };
        let mut model = ZooModel {
            name: cfg.name.clone(),
            path: cfg.path.clone(),
            layers: cfg.layers.clone(),
            geometry: Geometry {
                size: cfg.input.size,
                resize: cfg.input.resize_or_size(),
            },
            dims: Vec::new(),
            module,
            mean: to_dev(cfg.input.mean)?,
            std: to_dev(cfg.input.std)?,
        };
        let s = model.geometry.size as i64;
        let blank = Tensor::f_zeros([1, 3, s, s], (Kind::Float, device))
            .map_err(|e| Error::torch(&cfg.name, "making the probe input", e))?;
        let probe = model.run(&blank)?;
        model.dims = probe.layers.iter().map(|t| t.size()[1] as usize).collect();
        tracing::debug!(dims = ?model.dims, "probed");
        Ok(model)
    }

    /// (B, 3, H, W) in [0, 1] -> normalised with this model's mean and std.
    pub fn normalise(&self, x: &Tensor) -> Result<Tensor> {
        x.f_sub(&self.mean)
            .and_then(|t| t.f_div(&self.std))
            .map_err(|e| Error::torch(&self.name, "normalising the batch", e))
    }

    /// One forward pass on a normalised batch; every tap pooled to (B, D) on the device.
    pub fn run(&self, x: &Tensor) -> Result<Features> {
        let out = tch::no_grad(|| {
            self.module
                .method_is(METHOD, &[IValue::Tensor(x.shallow_clone())])
        })
        .map_err(|e| Error::torch(&self.name, "forward pass", e))?;
        let IValue::Tuple(mut items) = out else {
            return Err(self.internal("the rewritten forward did not return a tuple"));
        };
        if items.len() != self.layers.len() + 1 {
            return Err(self.internal("the rewritten forward returned the wrong number of values"));
        }
        let taps = items.split_off(1);
        let output = match items.pop() {
            Some(IValue::Tensor(t)) => Some(t),
            _ => None,
        };
        let mut layers = Vec::with_capacity(taps.len());
        for (name, tap) in self.layers.iter().zip(taps) {
            let IValue::Tensor(t) = tap else {
                return Err(self.internal("a tap is not a tensor"));
            };
            let pooled = taps::pool(&t).ok_or_else(|| Error::UnsupportedShape {
                model: self.name.clone(),
                layer: name.clone(),
                shape: t.size(),
            })?;
            layers.push(pooled.map_err(|e| Error::torch(&self.name, "pooling a tap", e))?);
        }
        Ok(Features { output, layers })
    }

    fn internal(&self, message: &str) -> Error {
        Error::Torch {
            model: self.name.clone(),
            context: "running forward_taps",
            message: message.to_owned(),
        }
    }
}
