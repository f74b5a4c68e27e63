//! One feature vector per image from a captured activation, computed on the device where the
//! activation lives: transferability metrics score vectors, and pooling first keeps the
//! statistics at O(C^2) per layer instead of O((C H W)^2).

use tch::{Kind, Tensor};

/// (N, C, H, W) -> global average pool; (N, T, C) -> mean over the T tokens; (N, C) as is.
/// The mean is taken in f32 whatever the activation's precision. `None` for any other rank.
pub fn pool(activation: &Tensor) -> Option<Result<Tensor, tch::TchError>> {
    let pooled = match activation.dim() {
        4 => activation.f_mean_dim(&[2i64, 3][..], false, Kind::Float),
        3 => activation.f_mean_dim(&[1i64][..], false, Kind::Float),
        2 => activation.f_to_kind(Kind::Float),
        _ => return None,
    };
    Some(pooled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_each_rank() {
        let x = Tensor::arange(2 * 3 * 2 * 2, (Kind::Float, tch::Device::Cpu)).view([2, 3, 2, 2]);
        let p = pool(&x).unwrap().unwrap();
        assert_eq!(p.size(), [2, 3]);
        assert_eq!(p.double_value(&[1, 2]), (20.0 + 21.0 + 22.0 + 23.0) / 4.0);

        let t = Tensor::arange(2 * 4 * 3, (Kind::Float, tch::Device::Cpu)).view([2, 4, 3]);
        let p = pool(&t).unwrap().unwrap();
        assert_eq!(p.size(), [2, 3]);
        assert_eq!(p.double_value(&[0, 1]), (1.0 + 4.0 + 7.0 + 10.0) / 4.0);

        let v = Tensor::ones([5, 7], (Kind::Half, tch::Device::Cpu));
        let p = pool(&v).unwrap().unwrap();
        assert_eq!((p.size(), p.kind()), (vec![5, 7], Kind::Float));

        assert!(pool(&Tensor::ones([3], (Kind::Float, tch::Device::Cpu))).is_none());
    }
}
