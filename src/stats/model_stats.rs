//! All the statistics of one model in one run: per layer, one `ClassMoments` for each feature
//! transform some metric asks for, and the `SourceStats` of its predictions. The unit that is
//! checkpointed, cached, sharded and merged (`+=` over disjoint images).

use tch::{Device, TchError, Tensor};

use super::batch_labels::BatchLabels;
use super::class_moments::ClassMoments;
use super::source::SourceStats;
use super::transform::Transform;

#[derive(Default)]
pub struct ModelStats {
    /// [layer]: (transform, store) pairs.
    pub layers: Vec<Vec<(Transform, ClassMoments)>>,
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
        for (stores, feats) in self.layers.iter_mut().zip(layers) {
            for (t, store) in stores.iter_mut() {
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
        for (_, store) in self.layers.iter_mut().flatten() {
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
            .map(|stores| {
                stores
                    .iter()
                    .map(|(t, s)| Ok((*t, s.to_device(device)?)))
                    .collect::<Result<Vec<_>, TchError>>()
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
        let layers: usize = self.layers.iter().flatten().map(|(_, s)| s.bytes()).sum();
        layers + self.source.as_ref().map_or(0, SourceStats::bytes)
    }

    /// Bytes of feature rows kept in host memory.
    pub fn host_bytes(&self) -> usize {
        self.layers
            .iter()
            .flatten()
            .map(|(_, s)| s.host_bytes())
            .sum()
    }

    /// Bytes of feature rows spilled to disk (beyond `memory_budget`) that the stores still read.
    pub fn spilled_rows_bytes(&self) -> u64 {
        self.layers
            .iter()
            .flatten()
            .map(|(_, s)| s.spilled_bytes())
            .sum()
    }

    /// Every store of every layer.
    pub fn stores_mut(&mut self) -> impl Iterator<Item = &mut ClassMoments> {
        self.layers.iter_mut().flatten().map(|(_, s)| s)
    }

    /// The first store of each layer (they all count the same images).
    pub fn first(&self, layer: usize) -> &ClassMoments {
        &self.layers[layer][0].1
    }

    pub fn store(&self, layer: usize, t: Transform) -> Option<&ClassMoments> {
        self.layers[layer]
            .iter()
            .find(|(u, _)| *u == t)
            .map(|(_, s)| s)
    }

    /// Images counted (every layer counts the same ones).
    pub fn images(&self) -> u64 {
        self.layers.first().map_or_else(
            || self.source.as_ref().map_or(0, SourceStats::images),
            |l| l[0].1.total(),
        )
    }
}
