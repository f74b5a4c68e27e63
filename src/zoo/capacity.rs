//! How much of a network fine-tuning must re-train above each cut: the parameters of every
//! module whose last call finishes after the cut's, in the forward graph's program order. With
//! the number of target images, this is what a data-size-aware cut recommendation weighs
//! against the features' quality: a shallow cut leaves millions of parameters to learn from a
//! few images.
//!
//! Counted from the TorchScript module itself (the taps shim's listing), so any exported model
//! works. Parameters the root module uses directly (a ViT's position embedding) belong to no
//! submodule and are not counted; the source head is counted (it is re-trained at every cut).

use crate::taps::LayerInfo;

/// Parameter elements in the modules that finish after `layer`'s last call; None when the
/// layer is not in the listing, names a particular call (`name#k`), or is never called outside
/// a loop or branch.
pub fn params_after(listing: &[LayerInfo], layer: &str) -> Option<u64> {
    if layer.contains('#') {
        return None;
    }
    let cut = listing.iter().find(|l| l.name == layer)?.position?;
    Some(
        listing
            .iter()
            .filter(|l| l.position.is_some_and(|p| p > cut))
            .map(|l| l.params)
            .sum(),
    )
}

/// Every parameter element owned by a submodule (what `params_after` counts from).
pub fn params_total(listing: &[LayerInfo]) -> u64 {
    listing.iter().map(|l| l.params).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, position: Option<usize>, params: u64) -> LayerInfo {
        LayerInfo {
            name: name.into(),
            calls: usize::from(position.is_some()),
            untappable: None,
            position,
            params,
        }
    }

    #[test]
    fn counts_modules_that_finish_after_the_cut() {
        // stem (conv 10) -> block (conv 20, conv 30; the parent finishes last) -> head (5).
        let listing = [
            info("stem", Some(0), 10),
            info("block.a", Some(1), 20),
            info("block.b", Some(2), 30),
            info("block", Some(3), 0),
            info("head", Some(4), 5),
            info("unused", None, 99),
        ];
        assert_eq!(params_after(&listing, "stem"), Some(55));
        assert_eq!(params_after(&listing, "block.a"), Some(35));
        assert_eq!(params_after(&listing, "block"), Some(5));
        assert_eq!(params_after(&listing, "head"), Some(0));
        assert_eq!(params_after(&listing, "unused"), None);
        assert_eq!(params_after(&listing, "missing"), None);
        assert_eq!(params_after(&listing, "block.a#1"), None);
        assert_eq!(params_total(&listing), 164);
    }
}
