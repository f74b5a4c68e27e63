//! The labels of one batch, grouped by class once and shared by every (model, layer) store.

use tch::{Device, Kind, Tensor};

pub struct BatchLabels {
    /// (B,) int64 on the statistics' device.
    pub labels: Tensor,
    /// For each class present: its index and its rows (None when the batch is that class alone).
    pub groups: Vec<(usize, Option<Tensor>)>,
    /// Rows per class present, in the order of `groups`.
    pub counts: Vec<u64>,
    /// The rows whose features a row sample keeps (positions, on the device) and their images'
    /// positions in the listing.
    pub sample: Option<(Tensor, Vec<u32>)>,
}

impl BatchLabels {
    pub fn new(labels: &[i64], device: Device) -> Result<Self, tch::TchError> {
        let mut rows: Vec<(usize, Vec<i64>)> = Vec::new();
        for (row, &label) in labels.iter().enumerate() {
            let class = label as usize;
            match rows.iter_mut().find(|(c, _)| *c == class) {
                Some((_, r)) => r.push(row as i64),
                None => rows.push((class, vec![row as i64])),
            }
        }
        rows.sort_by_key(|(c, _)| *c);
        let single = rows.len() == 1;
        let counts = rows.iter().map(|(_, r)| r.len() as u64).collect();
        let groups = rows
            .into_iter()
            .map(|(c, r)| {
                let idx = if single {
                    None
                } else {
                    Some(Tensor::f_from_slice(&r)?.f_to_device(device)?)
                };
                Ok((c, idx))
            })
            .collect::<Result<_, tch::TchError>>()?;
        let labels = Tensor::f_from_slice(labels)?
            .f_to_kind(Kind::Int64)?
            .f_to_device(device)?;
        Ok(BatchLabels {
            labels,
            groups,
            counts,
            sample: None,
        })
    }

    /// Marks rows `positions` (with their images' listing positions `ids`) as sampled.
    pub fn with_sample(
        mut self,
        positions: &[i64],
        ids: Vec<u32>,
        device: Device,
    ) -> Result<Self, tch::TchError> {
        self.sample = Some((Tensor::f_from_slice(positions)?.f_to_device(device)?, ids));
        Ok(self)
    }
}
