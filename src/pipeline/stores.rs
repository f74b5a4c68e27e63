//! Which statistics a run keeps: per layer, one `ClassMoments` for each feature transform some
//! metric asks for (almost always just the raw features), with the sums those metrics need, and
//! per model one `SourceStats` for the metrics that read its predictions. Also decides whether
//! statistics read from a file hold all of that.

use crate::error::{Error, Result};
use crate::metrics::Metric;
use crate::stats::{
    ClassMoments, LayerMeta, LayerStats, ModelStats, Needs, SourceStats, Transform,
};
use crate::zoo::ZooModel;

/// A layer's statistics at their largest, in bytes.
pub struct WorstCase {
    /// Sums and scatters, on the device.
    pub device: u64,
    /// The row sample, which stays in host memory.
    pub host: u64,
    /// Per-class feature rows: host memory, or disk beyond the budget.
    pub rows: u64,
}

/// What the metrics need, per feature transform, and from the source predictions.
pub struct Layout {
    per_transform: Vec<(Transform, Needs)>,
    source: Needs,
}

impl Layout {
    pub fn new(metrics: &[Box<dyn Metric>]) -> Layout {
        let mut per_transform: Vec<(Transform, Needs)> = Vec::new();
        let mut source = Needs::default();
        for m in metrics {
            let needs = m.needs();
            if needs.source() {
                source = source.union(needs);
            } else {
                match per_transform.iter_mut().find(|(t, _)| *t == m.transform()) {
                    Some((_, n)) => *n = n.union(needs),
                    None => per_transform.push((m.transform(), needs)),
                }
            }
        }
        // Counts and sums come with every store; without a layer metric one raw store still
        // counts the images.
        if per_transform.is_empty() {
            per_transform.push((Transform::Raw, Needs::default()));
        }
        Layout {
            per_transform,
            source,
        }
    }

    /// Rows of the sample the metrics need (0: none).
    pub fn sample_size(&self) -> usize {
        self.per_transform
            .iter()
            .map(|(_, n)| n.sample)
            .max()
            .unwrap_or(0)
    }

    pub fn wants_source(&self) -> bool {
        self.source.source()
    }

    /// Whether a layer's stores, read from a file, hold every sum the metrics need.
    pub fn covers_layer(&self, stores: &[(Transform, ClassMoments)]) -> bool {
        self.per_transform.iter().all(|(t, needs)| {
            stores
                .iter()
                .any(|(u, store)| u == t && store.covers(needs))
        })
    }

    pub fn covers_source(&self, source: Option<&SourceStats>) -> bool {
        !self.wants_source() || source.is_some_and(|s| s.covers(&self.source))
    }

    /// A text that changes whenever the kept sums change (part of a checkpoint's identity).
    pub fn describe(&self) -> String {
        format!("{:?} {:?}", self.per_transform, self.source)
    }

    /// The most memory the statistics of a layer of `dim` features can take over images with
    /// `per_class` images per class, split over `parts` devices. Each device part keeps its own
    /// sums; each class keeps its rows (host or spilled to disk, f32) while it has at most 2D of
    /// them, a D x D scatter (device) past that.
    pub fn worst_case(&self, dim: usize, per_class: &[u64], parts: usize) -> WorstCase {
        let (d, c) = (dim as u64, per_class.len() as u64);
        let mut device = 0;
        let mut host = 0;
        let mut rows = 0;
        for (_, needs) in &self.per_transform {
            let second = needs.class_second;
            let mut base = 8 * (d + c * d);
            if needs.total_second || second {
                base += 8 * d * d;
            }
            if needs.class_squares || second {
                base += 8 * c * d;
            }
            if needs.fourth {
                base += 8 * (d + 1);
            }
            if needs.sample > 0 {
                let images: u64 = per_class.iter().sum();
                host += 4 * images.min(needs.sample as u64) * d;
            }
            device += base * parts as u64;
            if second {
                for &n in per_class {
                    if n > 2 * d {
                        device += 8 * d * d;
                    } else {
                        rows += 4 * n * d;
                    }
                }
            }
        }
        WorstCase { device, host, rows }
    }

    pub fn allocate(&self, model: &ZooModel, classes: usize) -> Result<ModelStats> {
        let err = |e| Error::torch(&model.name, "allocating the statistics", e);
        let layers = model
            .probe
            .iter()
            .enumerate()
            .map(|(i, probe)| {
                let stores = self
                    .per_transform
                    .iter()
                    .map(|(t, needs)| {
                        Ok((*t, ClassMoments::new(classes, &t.apply(probe)?, needs)?))
                    })
                    .collect::<Result<Vec<_>, tch::TchError>>()
                    .map_err(err)?;
                Ok(LayerStats {
                    meta: LayerMeta {
                        name: model.layers[i].clone(),
                        dim: model.dims[i],
                        params_after: model.params_after.get(i).copied().flatten(),
                    },
                    stores,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let source = match model.source.classes() {
            Some(cs) if self.wants_source() => Some(
                SourceStats::new(classes, cs, &self.source, model.probe[0].device())
                    .map_err(err)?,
            ),
            _ => None,
        };
        Ok(ModelStats { layers, source })
    }
}
