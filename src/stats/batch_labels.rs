//! The labels of one batch, grouped by class once and shared by every (model, layer) store.

use tch::{Device, Tensor};

use crate::device::upload;

pub struct BatchLabels {
    /// (B,) int64 on the statistics' device.
    pub labels: Tensor,
    /// The same labels on the host.
    pub host: Vec<i64>,
    /// For each class present: its index and its rows (None when the batch is that class alone).
    pub groups: Vec<(usize, Option<Tensor>)>,
    /// Rows per class present, in the order of `groups`.
    pub counts: Vec<u64>,
    /// The rows whose features a row sample keeps (positions, on the device), their images'
    /// positions in the listing, and their labels.
    pub sample: Option<Sample>,
    /// The batch's number in its pass: rows copied to the host from this batch are readable once
    /// the device has finished batch `serial` (see `ModelStats::settle`).
    pub serial: u64,
}

pub struct Sample {
    pub positions: Tensor,
    pub ids: Vec<u32>,
    pub labels: Vec<i64>,
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
        // One upload for the labels and every group's rows: each small copy to a GPU would
        // otherwise be its own transfer.
        let mut all: Vec<i64> = labels.to_vec();
        if !single {
            for (_, r) in &rows {
                all.extend(r);
            }
        }
        let on_device = upload(&Tensor::f_from_slice(&all)?, device)?;
        let b = labels.len() as i64;
        let mut start = b;
        let groups = rows
            .into_iter()
            .map(|(c, r)| {
                let idx = if single {
                    None
                } else {
                    let len = r.len() as i64;
                    let t = on_device.f_narrow(0, start, len)?;
                    start += len;
                    Some(t)
                };
                Ok((c, idx))
            })
            .collect::<Result<_, tch::TchError>>()?;
        Ok(BatchLabels {
            labels: on_device.f_narrow(0, 0, b)?,
            host: labels.to_vec(),
            groups,
            counts,
            sample: None,
            serial: 0,
        })
    }

    /// Marks rows `positions` (with their images' listing positions `ids`) as sampled.
    pub fn with_sample(
        mut self,
        positions: &[i64],
        ids: Vec<u32>,
        device: Device,
    ) -> Result<Self, tch::TchError> {
        let labels = positions
            .iter()
            .map(|&p| self.host.get(p as usize).copied())
            .collect::<Option<Vec<i64>>>()
            .ok_or_else(|| tch::TchError::Shape("a sampled row is outside the batch".into()))?;
        self.sample = Some(Sample {
            positions: upload(&Tensor::f_from_slice(positions)?, device)?,
            ids,
            labels,
        });
        Ok(self)
    }

    /// Numbers the batch within its pass.
    pub fn numbered(mut self, serial: u64) -> Self {
        self.serial = serial;
        self
    }
}
