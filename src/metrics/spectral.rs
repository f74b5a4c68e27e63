//! Eigendecompositions shared by the metrics: every matrix they invert or factor is symmetric
//! (a scatter or a covariance), so one `eigh` in f64 does.

use tch::{Kind, TchError, Tensor};

/// Eigenvalues (ascending) and eigenvectors (columns) of a symmetric matrix, reading its lower
/// triangle.
pub fn eigh(a: &Tensor) -> Result<(Tensor, Tensor), TchError> {
    a.f_to_kind(Kind::Double)?.f_linalg_eigh("L")
}

/// tr(pinv(A) B) for symmetric A and B: eigenvalues of A at most `rcond` times the largest in
/// magnitude count as zero, as numpy.linalg.pinv(A, rcond, hermitian=True) does.
pub fn trace_pinv_product(a: &Tensor, b: &Tensor, rcond: f64) -> Result<f64, TchError> {
    let (values, vectors) = eigh(a)?;
    let largest = values.f_abs()?.f_max()?.f_double_value(&[])?;
    let keep = values.f_abs()?.f_gt(rcond * largest)?;
    let inverse = values
        .f_reciprocal()?
        .f_where_self(&keep, &values.f_zeros_like()?)?;
    // v_j^T B v_j for every eigenvector j.
    let projected = vectors.f_mul(&b.f_matmul(&vectors)?)?.f_sum_dim_intlist(
        &[0i64][..],
        false,
        Kind::Double,
    )?;
    inverse
        .f_mul(&projected)?
        .f_sum(Kind::Double)?
        .f_double_value(&[])
}
