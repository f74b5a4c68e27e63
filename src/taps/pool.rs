//! One feature vector per image from a captured activation, computed on the device where the
//! activation lives: transferability metrics score vectors, and pooling first keeps the
//! statistics at O(C^2) per layer instead of O((C H W)^2).

use tch::{Kind, Tensor};

use crate::config::Layout;

/// (N, C, H, W) -> global average pool ((N, H, W, C) with `Layout::Nhwc`); (N, T, C) -> mean
/// over the T tokens; (N, C) as is. The mean is taken in f32 whatever the activation's
/// precision. `None` for any other rank.
pub fn pool(activation: &Tensor, layout: Layout) -> Option<Result<Tensor, tch::TchError>> {
    let spatial: &[i64] = match layout {
        Layout::Nchw => &[2, 3],
        Layout::Nhwc => &[1, 2],
    };
    let pooled = match activation.dim() {
        4 => activation.f_mean_dim(spatial, false, Kind::Float),
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
        let p = pool(&x, Layout::Nchw).unwrap().unwrap();
        assert_eq!(p.size(), [2, 3]);
        assert_eq!(p.double_value(&[1, 2]), (20.0 + 21.0 + 22.0 + 23.0) / 4.0);
        // The same values laid out (N, H, W, C) pool to the same vectors.
        let nhwc = x.permute([0, 2, 3, 1]).contiguous();
        let q = pool(&nhwc, Layout::Nhwc).unwrap().unwrap();
        assert_eq!(q.size(), [2, 3]);
        assert!(p.allclose(&q, 0.0, 0.0, false));

        let t = Tensor::arange(2 * 4 * 3, (Kind::Float, tch::Device::Cpu)).view([2, 4, 3]);
        let p = pool(&t, Layout::Nchw).unwrap().unwrap();
        assert_eq!(p.size(), [2, 3]);
        assert_eq!(p.double_value(&[0, 1]), (1.0 + 4.0 + 7.0 + 10.0) / 4.0);

        let v = Tensor::ones([5, 7], (Kind::Half, tch::Device::Cpu));
        let p = pool(&v, Layout::Nchw).unwrap().unwrap();
        assert_eq!((p.size(), p.kind()), (vec![5, 7], Kind::Float));

        assert!(pool(
            &Tensor::ones([3], (Kind::Float, tch::Device::Cpu)),
            Layout::Nchw
        )
        .is_none());
    }
}
