//! A store as named arrays and back: what a statistics file holds of it (src/stats_file).

use tch::{TchError, Tensor};

use super::ClassMoments;
use crate::stats::class_second::ClassSecond;
use crate::stats::row_sample::RowSample;
use crate::stats::spill::Array;

impl ClassMoments {
    /// The arrays of the store by name, for a statistics file (`from_parts` reads them back).
    pub fn parts(&self) -> Result<Vec<(String, Array)>, TchError> {
        let mut out = vec![
            ("shift".to_owned(), Array::Held(self.shift.shallow_clone())),
            ("sums".to_owned(), Array::Held(self.sums.shallow_clone())),
        ];
        if let Some(second) = &self.class_second {
            // Present even before any row arrives, so the file says these sums were kept.
            out.push((
                "class_second".to_owned(),
                Array::Held(Tensor::f_from_slice(&[second.row_classes() as f64])?),
            ));
            for (name, a) in second.parts() {
                out.push((format!("class_second.{name}"), a));
            }
        }
        if let Some(sample) = &self.sample {
            for (name, t) in sample.parts()? {
                out.push((format!("sample.{name}"), Array::Held(t)));
            }
        }
        let optional = [
            ("total_second", self.total_second.as_ref()),
            ("class_squares", self.class_squares.as_ref()),
            ("fourth_q4", self.fourth.as_ref().map(|f| &f.0)),
            ("fourth_q3", self.fourth.as_ref().map(|f| &f.1)),
        ];
        out.extend(
            optional
                .into_iter()
                .filter_map(|(n, t)| t.map(|t| (n.to_owned(), Array::Held(t.shallow_clone())))),
        );
        Ok(out)
    }

    /// A store from the arrays `parts` gave and the per-class counts; the shapes are checked.
    pub fn from_parts(counts: Vec<u64>, mut parts: Vec<(String, Tensor)>) -> Result<Self, String> {
        // Each class's rows or scatter, named `class_second.<form>_<class>`, and the row
        // sample's arrays, `sample.<name>`.
        let mut own = Vec::new();
        let mut sampled = Vec::new();
        let mut i = 0;
        while i < parts.len() {
            if let Some(name) = parts[i].0.strip_prefix("class_second.") {
                let name = name.to_owned();
                own.push((name, parts.swap_remove(i).1));
            } else if let Some(name) = parts[i].0.strip_prefix("sample.") {
                let name = name.to_owned();
                sampled.push((name, parts.swap_remove(i).1));
            } else {
                i += 1;
            }
        }
        let sample = if sampled.is_empty() {
            None
        } else {
            Some(RowSample::from_parts(sampled)?)
        };
        let mut take = |name: &str| {
            parts
                .iter()
                .position(|(n, _)| n == name)
                .map(|i| parts.swap_remove(i).1)
        };
        let shift = take("shift").ok_or("no `shift` array")?;
        let sums = take("sums").ok_or("no `sums` array")?;
        let (c, d) = (
            counts.len() as i64,
            shift.size().first().copied().unwrap_or(-1),
        );
        let check = |name: &str, t: Option<Tensor>, shape: &[i64]| match t {
            Some(t) if t.size() != shape => Err(format!(
                "array `{name}` has shape {:?}, expected {shape:?}",
                t.size()
            )),
            other => Ok(other),
        };
        let sums = check("sums", Some(sums), &[c, d])?;
        let class_second = match take("class_second") {
            Some(_) => {
                let device = shift.device();
                Some(ClassSecond::from_parts(
                    counts.len(),
                    d.max(0) as usize,
                    device,
                    own,
                )?)
            }
            None if own.is_empty() => None,
            None => return Err("per-class rows without their marker".into()),
        };
        let q4 = check("fourth_q4", take("fourth_q4"), &[])?;
        let q3 = check("fourth_q3", take("fourth_q3"), &[d])?;
        let store = ClassMoments {
            shift: check("shift", Some(shift), &[d])?.ok_or("no shift")?,
            sums: sums.ok_or("no sums")?,
            class_second,
            sample,
            total_second: check("total_second", take("total_second"), &[d, d])?,
            class_squares: check("class_squares", take("class_squares"), &[c, d])?,
            fourth: match (q4, q3) {
                (Some(a), Some(b)) => Some((a, b)),
                (None, None) => None,
                _ => return Err("only one of the two fourth-moment arrays".into()),
            },
            counts,
        };
        if let Some((name, _)) = parts.first() {
            return Err(format!("unknown array `{name}`"));
        }
        Ok(store)
    }
}
