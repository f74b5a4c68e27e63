//! What is done to each pooled feature vector before it is accumulated (TransRate's
//! `normalize: l2` keeps a store of its own).

/// What is done to each pooled feature vector before it is accumulated.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Transform {
    Raw,
    /// x / |x|: TransRate's `normalize: l2`.
    L2,
}

impl Transform {
    /// Applies the transform to the rows of (B, D) features, or to one (D,) vector.
    pub fn apply(self, x: &tch::Tensor) -> Result<tch::Tensor, tch::TchError> {
        match self {
            Transform::Raw => Ok(x.shallow_clone()),
            // As torch.nn.functional.normalize: x / max(|x|, 1e-12), so a zero vector stays zero.
            Transform::L2 => {
                let norm = x
                    .f_square()?
                    .f_sum_dim_intlist(&[-1i64][..], true, x.kind())?
                    .f_sqrt()?;
                x.f_div(&norm.f_clamp_min(1e-12)?)
            }
        }
    }
}
