//! All the statistics of one model in one run: per layer, what the layer is (`LayerMeta`) and one
//! `ClassMoments` for each feature transform some metric asks for, as one value (`LayerStats`);
//! and the `SourceStats` of its predictions. The unit that is checkpointed, cached, sharded and
//! merged (`+=` over disjoint images).

use serde::{Deserialize, Serialize};
use tch::{Device, TchError, Tensor};

use super::batch_labels::BatchLabels;
use super::class_moments::ClassMoments;
use super::source::SourceStats;
use super::transform::Transform;

/// What a report needs to know of a layer without its statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerMeta {
    pub name: String,
    pub dim: usize,
    pub params_after: Option<u64>,
}

/// One layer: what it is, and its (transform, store) pairs.
pub struct LayerStats {
    pub meta: LayerMeta,
    pub stores: Vec<(Transform, ClassMoments)>,
}

#[derive(Default)]
pub struct ModelStats {
    /// In the order the model's layers are listed.
    pub layers: Vec<LayerStats>,
    pub source: Option<SourceStats>,
}

impl ModelStats {
    /// Folds in one batch: the pooled (B, D) features of each layer, in `layers` order, and the
    /// source logits when this model has them.
    pub fn update(
        &mut self,
        layers: &[Tensor],
        source: Option<&Tensor>,
        batch: &BatchLabels,
        labels: &[i64],
    ) -> Result<(), TchError> {
        for (layer, feats) in self.layers.iter_mut().zip(layers) {
            for (t, store) in layer.stores.iter_mut() {
                store.update(&t.apply(feats)?, batch)?;
            }
        }
        if let (Some(stats), Some(logits)) = (&mut self.source, source) {
            stats.update(logits, batch, labels)?;
        }
        Ok(())
    }

    /// Makes the host rows (class rows, source softmax rows) of batches up to `done` readable,
    /// once the device has finished them (the pass waited on their fence); u64::MAX after
    /// waiting for the whole device.
    pub fn settle(&mut self, done: u64) -> Result<(), TchError> {
        for store in self.stores_mut() {
            store.settle(done)?;
        }
        if let Some(source) = &mut self.source {
            source.settle(done)?;
        }
        Ok(())
    }

    /// Adds the statistics of the same model and layers gathered over other images.
    pub fn merge(&mut self, other: &mut ModelStats) -> Result<(), TchError> {
        if self.layers.len() != other.layers.len()
            || self.source.is_some() != other.source.is_some()
        {
            return Err(TchError::Shape(
                "cannot merge statistics of different layers".into(),
            ));
        }
        for (mine, theirs) in self.layers.iter_mut().zip(&other.layers) {
            let (mine, theirs) = (&mut mine.stores, &theirs.stores);
            if mine.len() != theirs.len() {
                return Err(TchError::Shape(
                    "cannot merge statistics of different transforms".into(),
                ));
            }
            for ((t, a), (u, b)) in mine.iter_mut().zip(theirs) {
                if t != u {
                    return Err(TchError::Shape(
                        "cannot merge statistics of different transforms".into(),
                    ));
                }
                a.merge(b)?;
            }
        }
        if let (Some(a), Some(b)) = (&mut self.source, &mut other.source) {
            a.merge(b)?;
        }
        Ok(())
    }

    /// A copy on `device`.
    pub fn to_device(&mut self, device: Device) -> Result<ModelStats, TchError> {
        let layers = self
            .layers
            .iter()
            .map(|layer| {
                Ok(LayerStats {
                    meta: layer.meta.clone(),
                    stores: layer
                        .stores
                        .iter()
                        .map(|(t, s)| Ok((*t, s.to_device(device)?)))
                        .collect::<Result<Vec<_>, TchError>>()?,
                })
            })
            .collect::<Result<Vec<_>, TchError>>()?;
        let source = self
            .source
            .as_mut()
            .map(|s| s.to_device(device))
            .transpose()?;
        Ok(ModelStats { layers, source })
    }

    pub fn bytes(&self) -> usize {
        let layers: usize = self.stores().map(ClassMoments::bytes).sum();
        layers + self.source.as_ref().map_or(0, SourceStats::bytes)
    }

    /// Bytes of feature rows kept in host memory.
    pub fn host_bytes(&self) -> usize {
        self.stores().map(ClassMoments::host_bytes).sum()
    }

    /// Bytes of feature rows spilled to disk (beyond `memory_budget`) that the stores still read.
    pub fn spilled_rows_bytes(&self) -> u64 {
        self.stores().map(ClassMoments::spilled_bytes).sum()
    }

    /// Every store of every layer.
    pub fn stores(&self) -> impl Iterator<Item = &ClassMoments> {
        self.layers
            .iter()
            .flat_map(|l| l.stores.iter().map(|(_, s)| s))
    }

    pub fn stores_mut(&mut self) -> impl Iterator<Item = &mut ClassMoments> {
        self.layers
            .iter_mut()
            .flat_map(|l| l.stores.iter_mut().map(|(_, s)| s))
    }

    /// The first store of each layer (they all count the same images).
    pub fn first(&self, layer: usize) -> &ClassMoments {
        &self.layers[layer].stores[0].1
    }

    pub fn store(&self, layer: usize, t: Transform) -> Option<&ClassMoments> {
        self.layers[layer]
            .stores
            .iter()
            .find(|(u, _)| *u == t)
            .map(|(_, s)| s)
    }

    /// Images counted (every layer counts the same ones).
    pub fn images(&self) -> u64 {
        self.layers.first().map_or_else(
            || self.source.as_ref().map_or(0, SourceStats::images),
            |l| l.stores[0].1.total(),
        )
    }
}
