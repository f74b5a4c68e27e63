//! The same answer from the same inputs. libtorch's CPU matrix products and linear algebra go
//! through MKL, whose default dispatch may round one product differently from the next by the
//! operands' memory alignment and the number of threads: identical images need not give
//! identical statistics, and a shard's batches need not add up to the single run's bits.
//! MKL's Conditional Numerical Reproducibility (`MKL_CBWR`) fixes one code path per CPU. The
//! binary asks for it (`AUTO`: the fastest path this CPU supports, taken every time) before
//! MKL starts, unless the user has set `MKL_CBWR` themselves; docs/reproducibility.md says
//! what that guarantees, across CPUs too, and what it costs.

/// What the process runs under: the user's `MKL_CBWR`, or the branch this module asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reproducibility {
    /// `MKL_CBWR` was set before the process started; it is left as it is.
    User(String),
    /// `MKL_CBWR` was unset; this process set it.
    Requested(&'static str),
    /// `ZS_MKL_DEFAULT_DISPATCH=1`: MKL's default dispatch, as before this module existed. A
    /// measurement switch for what reproducibility costs (tools/perf/reproducibility), not a
    /// setting.
    Declined,
}

/// The branch asked for when the user names none.
pub const DEFAULT_BRANCH: &str = "AUTO";

/// Sets `MKL_CBWR` to `DEFAULT_BRANCH` unless the user has set it. MKL reads the variable once,
/// at its first call, so this must run before any libtorch work and while the process has one
/// thread (the environment is not safe to change while another thread reads it): at the top
/// of `main`, or of a program embedding the library.
pub fn request_reproducible_mkl() -> Reproducibility {
    if std::env::var_os("ZS_MKL_DEFAULT_DISPATCH").is_some_and(|v| v == "1") {
        return Reproducibility::Declined;
    }
    match std::env::var("MKL_CBWR") {
        Ok(value) if !value.is_empty() => Reproducibility::User(value),
        _ => {
            std::env::set_var("MKL_CBWR", DEFAULT_BRANCH);
            Reproducibility::Requested(DEFAULT_BRANCH)
        }
    }
}
