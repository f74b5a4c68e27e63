//! Where a model's source-task logits come from, for the metrics that read a model's own
//! classifier (NCE, LEEP): kept in statistics files and module caches, so a leaf of its own.

/// Where a model's source-task logits (a (B, C_s) tensor, for NCE and LEEP) come from.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceLogits {
    /// Not asked for.
    Unwanted,
    /// The model's own output.
    Output { classes: usize },
    /// The manifest's `head` submodule, tapped.
    Head { classes: usize },
    /// Neither is a 2-D tensor: why, for the report.
    Missing(String),
}

impl SourceLogits {
    pub fn classes(&self) -> Option<usize> {
        match self {
            SourceLogits::Output { classes } | SourceLogits::Head { classes } => Some(*classes),
            _ => None,
        }
    }
}
