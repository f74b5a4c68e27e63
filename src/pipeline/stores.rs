//! The statistics of one run, laid out for the device loop: per model, per layer, one
//! `ClassMoments` for each feature transform some metric asks for (almost always just the raw
//! features), and one `SourceStats` per model for the metrics that read its predictions.

use crate::error::{Error, Result};
use crate::metrics::Metric;
use crate::stats::{BatchLabels, ClassMoments, Needs, SourceStats, Transform};
use crate::zoo::{Features, ZooModel};

pub struct ModelStats {
    /// [layer]: (transform, store) pairs.
    pub layers: Vec<Vec<(Transform, ClassMoments)>>,
    pub source: Option<SourceStats>,
}

/// What the metrics need, per feature transform, and from the source predictions.
pub struct Plan {
    per_transform: Vec<(Transform, Needs)>,
    source: Needs,
}

impl Plan {
    pub fn new(metrics: &[Box<dyn Metric>]) -> Plan {
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
        Plan {
            per_transform,
            source,
        }
    }

    pub fn wants_source(&self) -> bool {
        self.source.source()
    }

    pub fn allocate(&self, model: &ZooModel, classes: usize) -> Result<ModelStats> {
        let err = |e| Error::torch(&model.name, "allocating the statistics", e);
        let layers = model
            .probe
            .iter()
            .map(|probe| {
                self.per_transform
                    .iter()
                    .map(|(t, needs)| {
                        Ok((*t, ClassMoments::new(classes, &t.apply(probe)?, needs)?))
                    })
                    .collect::<Result<Vec<_>, tch::TchError>>()
                    .map_err(err)
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

impl ModelStats {
    pub fn update(
        &mut self,
        model: &ZooModel,
        features: &Features,
        batch: &BatchLabels,
        labels: &[i64],
    ) -> Result<()> {
        let err = |e| Error::torch(&model.name, "updating the statistics", e);
        for ((layer, stores), feats) in model
            .layers
            .iter()
            .zip(&mut self.layers)
            .zip(&features.layers)
        {
            let _span = tracing::trace_span!("layer", name = %layer).entered();
            for (t, store) in stores.iter_mut() {
                store
                    .update(&t.apply(feats).map_err(err)?, batch)
                    .map_err(err)?;
            }
        }
        if let (Some(source), Some(logits)) = (&mut self.source, &features.source) {
            source.update(logits, batch, labels).map_err(err)?;
        }
        Ok(())
    }

    pub fn bytes(&self) -> usize {
        let layers: usize = self.layers.iter().flatten().map(|(_, s)| s.bytes()).sum();
        layers + self.source.as_ref().map_or(0, SourceStats::bytes)
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
}
