//! What a pass is asked to do: the images, the models and the layers whose statistics are not
//! cached, and how the statistics are laid out. Read by the pass and by each device part.

use crate::dataset::Item;
use crate::plan::Plan;
use crate::stats_file::{DatasetId, ModelKey};
use crate::zoo::ModelSpec;

use super::stores::Layout;

pub struct Job<'a> {
    pub plan: &'a Plan,
    pub items: &'a [Item],
    /// The models to run, with only the layers to compute.
    pub specs: Vec<ModelSpec>,
    pub keys: Vec<ModelKey>,
    pub layout: &'a Layout,
    pub dataset: &'a DatasetId,
    pub classes: usize,
    /// Per image of the listing, whether a row sample keeps its features.
    pub sample: Option<&'a [bool]>,
}

impl Job<'_> {
    /// Images per class in this pass's listing.
    pub fn per_class(&self) -> Vec<u64> {
        let mut per_class = vec![0u64; self.classes];
        for item in self.items {
            per_class[item.label] += 1;
        }
        per_class
    }
}
