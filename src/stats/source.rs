//! What the source task's classifier says about the target images, per model: the statistics
//! of NCE (Tran et al., ICCV 2019) and LEEP (Nguyen et al., ICML 2020).
//!
//! NCE needs only the joint counts of (argmax source class, target class). LEEP's per-image term
//! log sum_z P(y_i | z) theta_i(z) needs P(y | z), which is known only after the last image, so
//! the softmax rows theta_i cannot be folded into a sum: they are written, in f32, to a
//! temporary file (N x C_s x 4 bytes of disk, nothing in memory) and read back once at the end.
//! That beats a second pass over the images, which would cost a second forward of every model.
//! From a GPU the rows leave through pinned memory without making the host wait, and are written
//! once the device has finished their batch (`settle`), as the class rows of `class_second` are.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};

use tch::{Device, Kind, TchError, Tensor};

use super::batch_labels::BatchLabels;
use super::needs::Needs;
use crate::device::start_download;

pub struct SourceStats {
    classes: usize,
    source_classes: usize,
    n: u64,
    /// (C_s, C): images whose argmax source class is z and target class is y.
    hard: Option<Tensor>,
    /// (C, C_s): sum of the softmax rows of the images of each target class.
    soft: Option<Tensor>,
    /// Each image's label (i32) and softmax row (C_s f32), in order.
    rows: Option<Spill>,
    /// Batches' softmax rows (B, C_s) f32 on their way to host memory, with their labels and
    /// their batch's number, oldest first: written to `rows` at `settle`.
    landing: VecDeque<(u64, Tensor, Vec<i64>)>,
    /// Takes the GPU's way (rows written at `settle`) for logits on the CPU too: for tests of
    /// that way on machines without a GPU.
    land_on_host: bool,
}

/// A temporary file (deleted on drop) appended to through one handle and read through fresh
/// ones, so reading never moves the writing position.
struct Spill {
    file: tempfile::NamedTempFile,
    writer: BufWriter<File>,
}

impl Spill {
    fn new() -> std::io::Result<Spill> {
        let file = tempfile::NamedTempFile::new()?;
        let writer = BufWriter::new(file.reopen()?);
        Ok(Spill { file, writer })
    }

    /// A reader from the start, after flushing what is buffered.
    fn reader(&mut self) -> std::io::Result<BufReader<File>> {
        self.writer.flush()?;
        Ok(BufReader::new(self.file.reopen()?))
    }
}

fn io(e: std::io::Error) -> TchError {
    TchError::Io(e)
}

impl SourceStats {
    pub fn new(
        classes: usize,
        source_classes: usize,
        needs: &Needs,
        device: Device,
    ) -> Result<Self, TchError> {
        let opts = (Kind::Double, device);
        let (c, cs) = (classes as i64, source_classes as i64);
        Ok(SourceStats {
            classes,
            source_classes,
            n: 0,
            hard: if needs.source_hard {
                Some(Tensor::f_zeros([cs, c], opts)?)
            } else {
                None
            },
            soft: if needs.source_soft {
                Some(Tensor::f_zeros([c, cs], opts)?)
            } else {
                None
            },
            rows: if needs.source_soft {
                Some(Spill::new().map_err(io)?)
            } else {
                None
            },
            landing: VecDeque::new(),
            land_on_host: false,
        })
    }

    pub fn source_classes(&self) -> usize {
        self.source_classes
    }

    /// Folds in a batch of source logits, (B, C_s), labelled by `batch`.
    pub fn update(
        &mut self,
        logits: &Tensor,
        batch: &BatchLabels,
        labels: &[i64],
    ) -> Result<(), TchError> {
        let b = labels.len() as i64;
        if logits.size() != [b, self.source_classes as i64] {
            return Err(TchError::Shape(format!(
                "source logits {:?} for {b} images",
                logits.size()
            )));
        }
        let probs = logits.f_to_kind(Kind::Double)?.f_softmax(1, Kind::Double)?;
        if let Some(hard) = &mut self.hard {
            let z = probs.f_argmax(1, false)?;
            let flat = z.f_mul_scalar(self.classes as i64)?.f_add(&batch.labels)?;
            let ones = Tensor::f_ones([b], (Kind::Double, probs.device()))?;
            let _ = hard.f_view([-1])?.f_index_add_(0, &flat, &ones)?;
        }
        if let Some(soft) = &mut self.soft {
            let _ = soft.f_index_add_(0, &batch.labels, &probs)?;
        }
        if self.rows.is_some() {
            let download = start_download(&probs.f_to_kind(Kind::Float)?)?;
            self.landing
                .push_back((batch.serial, download.tensor, labels.to_vec()));
            if !download.staged && !self.land_on_host {
                self.settle(batch.serial)?;
            }
        }
        self.n += b as u64;
        Ok(())
    }

    /// Writes the softmax rows of batches up to `done`, which the device has finished, to the
    /// rows' file, in order.
    pub fn settle(&mut self, done: u64) -> Result<(), TchError> {
        while self
            .landing
            .front()
            .is_some_and(|(serial, _, _)| *serial <= done)
        {
            let (Some((_, host, labels)), Some(rows)) = (self.landing.pop_front(), &mut self.rows)
            else {
                break;
            };
            let count = labels.len() * self.source_classes;
            let mut values = vec![0f32; count];
            host.f_copy_data(&mut values, count)?;
            for (label, row) in labels.iter().zip(values.chunks(self.source_classes)) {
                rows.writer
                    .write_all(&(*label as i32).to_le_bytes())
                    .map_err(io)?;
                for v in row {
                    rows.writer.write_all(&v.to_le_bytes()).map_err(io)?;
                }
            }
        }
        Ok(())
    }

    /// An error unless every batch's rows have been written (a reader would miss some).
    fn settled(&self) -> Result<(), TchError> {
        match self.landing.front() {
            None => Ok(()),
            Some((serial, _, _)) => Err(TchError::Shape(format!(
                "the softmax rows of batch {serial} have not been written yet"
            ))),
        }
    }

    /// Adds another store of the same shape (fed other images).
    pub fn merge(&mut self, other: &mut SourceStats) -> Result<(), TchError> {
        self.settled()?;
        other.settled()?;
        if (self.classes, self.source_classes) != (other.classes, other.source_classes)
            || self.hard.is_some() != other.hard.is_some()
            || self.soft.is_some() != other.soft.is_some()
        {
            return Err(TchError::Shape(
                "cannot merge source statistics of different shapes".into(),
            ));
        }
        for (mine, theirs) in [
            (self.hard.as_mut(), other.hard.as_ref()),
            (self.soft.as_mut(), other.soft.as_ref()),
        ] {
            if let (Some(mine), Some(theirs)) = (mine, theirs) {
                let _ = mine.f_add_(&theirs.f_to_device(mine.device())?)?;
            }
        }
        if let (Some(mine), Some(theirs)) = (&mut self.rows, &mut other.rows) {
            let mut reader = theirs.reader().map_err(io)?;
            std::io::copy(&mut reader, &mut mine.writer).map_err(io)?;
        }
        self.n += other.n;
        Ok(())
    }

    pub fn classes(&self) -> usize {
        self.classes
    }

    /// The joint-count arrays by name, for a statistics file.
    pub fn parts(&self) -> Vec<(&'static str, &Tensor)> {
        [("hard", self.hard.as_ref()), ("soft", self.soft.as_ref())]
            .into_iter()
            .filter_map(|(n, t)| t.map(|t| (n, t)))
            .collect()
    }

    /// The spilled softmax rows as bytes (`spilled_bytes` of them), for a statistics file.
    pub fn rows_reader(&mut self) -> Option<std::io::Result<BufReader<File>>> {
        if let Err(e) = self.settled() {
            return Some(Err(std::io::Error::other(e.to_string())));
        }
        self.rows.as_mut().map(Spill::reader)
    }

    /// Statistics read back from a file: `parts`' arrays, and the rows' bytes from `rows`.
    pub fn from_parts(
        classes: usize,
        source_classes: usize,
        n: u64,
        mut parts: Vec<(String, Tensor)>,
        rows: Option<&mut dyn Read>,
    ) -> Result<Self, String> {
        let mut take = |name: &str, shape: [i64; 2]| -> Result<Option<Tensor>, String> {
            match parts.iter().position(|(p, _)| p == name) {
                Some(i) => {
                    let t = parts.swap_remove(i).1;
                    if t.size() != shape {
                        return Err(format!("array `{name}` has shape {:?}", t.size()));
                    }
                    Ok(Some(t))
                }
                None => Ok(None),
            }
        };
        let (c, cs) = (classes as i64, source_classes as i64);
        let hard = take("hard", [cs, c])?;
        let soft = take("soft", [c, cs])?;
        if let Some((name, _)) = parts.first() {
            return Err(format!("unknown array `{name}`"));
        }
        let rows = match rows {
            Some(reader) => {
                let mut spill = Spill::new().map_err(|e| e.to_string())?;
                let want = n * 4 * (1 + source_classes as u64);
                let copied = std::io::copy(&mut reader.take(want), &mut spill.writer)
                    .map_err(|e| e.to_string())?;
                if copied != want {
                    return Err(format!("{copied} bytes of softmax rows, expected {want}"));
                }
                Some(spill)
            }
            None => None,
        };
        if soft.is_some() != rows.is_some() {
            return Err("softmax sums without their rows".into());
        }
        Ok(SourceStats {
            classes,
            source_classes,
            n,
            hard,
            soft,
            rows,
            landing: VecDeque::new(),
            land_on_host: false,
        })
    }

    /// A copy of the joint counts on `device` (the rows stay in their file, shared by neither).
    pub fn to_device(&mut self, device: Device) -> Result<SourceStats, TchError> {
        self.settled()?;
        let mv = |t: &Option<Tensor>| t.as_ref().map(|t| t.f_to_device(device)).transpose();
        let rows = match &mut self.rows {
            Some(rows) => {
                let mut copy = Spill::new().map_err(io)?;
                std::io::copy(&mut rows.reader().map_err(io)?, &mut copy.writer).map_err(io)?;
                Some(copy)
            }
            None => None,
        };
        Ok(SourceStats {
            classes: self.classes,
            source_classes: self.source_classes,
            n: self.n,
            hard: mv(&self.hard)?,
            soft: mv(&self.soft)?,
            rows,
            landing: VecDeque::new(),
            land_on_host: false,
        })
    }

    /// Whether these statistics hold everything `needs` asks for.
    pub fn covers(&self, needs: &Needs) -> bool {
        (!needs.source_hard || self.hard.is_some()) && (!needs.source_soft || self.soft.is_some())
    }

    pub fn images(&self) -> u64 {
        self.n
    }

    /// The joint distribution of (argmax source class, target class), (C_s, C).
    pub fn hard_joint(&self) -> Option<Result<Tensor, TchError>> {
        self.hard
            .as_ref()
            .map(|h| h.f_div_scalar(self.n.max(1) as f64))
    }

    /// The empirical joint P(y, z) = 1/n sum over class-y images of theta(z), (C, C_s).
    pub fn soft_joint(&self) -> Option<Result<Tensor, TchError>> {
        self.soft
            .as_ref()
            .map(|s| s.f_div_scalar(self.n.max(1) as f64))
    }

    /// Calls `f(labels, rows)` on the spilled softmax rows, `chunk` images at a time, in order.
    pub fn for_each_rows(
        &mut self,
        chunk: usize,
        mut f: impl FnMut(&[i64], &Tensor) -> Result<(), TchError>,
    ) -> Result<(), TchError> {
        self.settled()?;
        let Some(rows) = &mut self.rows else {
            return Err(TchError::Kind(
                "these statistics were gathered without the softmax rows".into(),
            ));
        };
        let mut reader = rows.reader().map_err(io)?;
        let cs = self.source_classes;
        let record = 4 * (1 + cs);
        let mut buf = vec![0u8; record * chunk];
        let mut left = self.n as usize;
        while left > 0 {
            let take = left.min(chunk);
            reader.read_exact(&mut buf[..take * record]).map_err(io)?;
            let mut labels = Vec::with_capacity(take);
            let mut values = Vec::with_capacity(take * cs);
            for rec in buf[..take * record].chunks(record) {
                labels.push(i32::from_le_bytes([rec[0], rec[1], rec[2], rec[3]]) as i64);
                values.extend(
                    rec[4..]
                        .chunks(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                );
            }
            let theta = Tensor::f_from_slice(&values)?.f_view([take as i64, cs as i64])?;
            f(&labels, &theta)?;
            left -= take;
        }
        Ok(())
    }

    pub fn bytes(&self) -> usize {
        let numel = |t: &Tensor| t.size().iter().product::<i64>() as usize;
        8 * (self.hard.as_ref().map_or(0, numel) + self.soft.as_ref().map_or(0, numel))
    }

    /// Disk used by the spilled rows.
    pub fn spilled_bytes(&self) -> u64 {
        if self.rows.is_some() {
            self.n * 4 * (1 + self.source_classes as u64)
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Labels and softmax rows (flattened) of a chunk of images.
    type Chunk = (Vec<i64>, Vec<f32>);

    /// Each chunk that `for_each_rows` hands out, two images at a time.
    fn rows_of(stats: &mut SourceStats) -> Result<Vec<Chunk>, TchError> {
        let mut out = Vec::new();
        stats.for_each_rows(2, |labels, theta| {
            out.push((labels.to_vec(), Vec::<f32>::try_from(theta.flatten(0, -1))?));
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn rows_landing_late_are_written_in_order_once_their_batch_is_done() {
        let needs = Needs {
            source_soft: true,
            ..Needs::default()
        };
        let mut direct = SourceStats::new(3, 4, &needs, Device::Cpu).unwrap();
        let mut late = SourceStats::new(3, 4, &needs, Device::Cpu).unwrap();
        late.land_on_host = true;
        tch::manual_seed(3);
        for serial in 0..3u64 {
            let labels = vec![serial as i64, 2, 0];
            let batch = BatchLabels::new(&labels, Device::Cpu)
                .unwrap()
                .numbered(serial);
            let logits = Tensor::randn([3, 4], (Kind::Float, Device::Cpu));
            direct.update(&logits, &batch, &labels).unwrap();
            late.update(&logits, &batch, &labels).unwrap();
        }
        // A reader is refused, not handed some of the rows, until every batch's are written.
        let refused = |s: &mut SourceStats| rows_of(s).unwrap_err().to_string();
        assert!(refused(&mut late).contains("batch 0 have not been written"));
        late.settle(1).unwrap();
        assert!(refused(&mut late).contains("batch 2 have not been written"));
        assert!(late.rows_reader().unwrap().is_err());
        late.settle(u64::MAX).unwrap();
        let want = rows_of(&mut direct).unwrap();
        assert_eq!(want.len(), 5);
        assert_eq!(want[0].0, [0, 2]);
        assert_eq!(rows_of(&mut late).unwrap(), want);
    }
}
