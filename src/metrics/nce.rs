//! NCE, negative conditional entropy (Tran et al., "Transferability and Hardness of Supervised
//! Classification Tasks", ICCV 2019): -H(Y | Z) for Z the source classifier's argmax label,
//!   NCE = sum_{z, y} P(z, y) log (P(z, y) / P(z))
//! from the counts of (argmax source class, target class). A model whose output is not a 2-D
//! tensor of source logits has no NCE.

use tch::Kind;

use super::metric::{scalar, torch_err, Metric};
use crate::error::Result;
use crate::stats::{Needs, SourceStats};

pub struct Nce;

const NAME: &str = "nce";

impl Metric for Nce {
    fn name(&self) -> &str {
        NAME
    }

    fn needs(&self) -> Needs {
        Needs {
            source_hard: true,
            ..Needs::default()
        }
    }

    fn score_source(&self, stats: &mut SourceStats) -> Option<Result<f64>> {
        let joint = stats.hard_joint()?;
        Some(
            (|| {
                let joint = joint?; // (C_s, C)
                let pz = joint.f_sum_dim_intlist(&[1i64][..], true, Kind::Double)?;
                let ratio = joint.f_div(&pz.f_clamp_min(f64::MIN_POSITIVE)?)?;
                // 0 log 0 = 0: cells never seen add nothing.
                let terms = joint.f_mul(&ratio.f_clamp_min(f64::MIN_POSITIVE)?.f_log()?)?;
                scalar(terms.f_sum(Kind::Double)?)
            })()
            .map_err(torch_err(NAME)),
        )
    }
}
