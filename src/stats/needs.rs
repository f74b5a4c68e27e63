//! What statistics a set of metrics asks the pass to keep: each metric says what it reads, and
//! the pass allocates only the union.

/// The statistics a set of metrics reads, beyond per-class counts and sums.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// The feature rows of a fixed subsample of at most this many images (0: none): k-NN.
    pub sample: usize,
    /// Per-class second-moment matrices, (C, D, D): TransRate.
    pub class_second: bool,
    /// The total second-moment matrix, (D, D): LogME, H-scores.
    pub total_second: bool,
    /// Per-class sums of squares, (C, D): GBC's diagonal Gaussians.
    pub class_squares: bool,
    /// Sum of |x|^4 and of |x|^2 x: the Ledoit-Wolf shrinkage.
    pub fourth: bool,
    /// Counts of (argmax source class, target class): NCE.
    pub source_hard: bool,
    /// Source softmax rows: LEEP.
    pub source_soft: bool,
}

impl Needs {
    pub fn union(self, o: Needs) -> Needs {
        Needs {
            sample: self.sample.max(o.sample),
            class_second: self.class_second || o.class_second,
            total_second: self.total_second || o.total_second,
            class_squares: self.class_squares || o.class_squares,
            fourth: self.fourth || o.fourth,
            source_hard: self.source_hard || o.source_hard,
            source_soft: self.source_soft || o.source_soft,
        }
    }

    pub fn features(&self) -> bool {
        self.class_second
            || self.total_second
            || self.class_squares
            || self.fourth
            || self.sample > 0
    }

    pub fn source(&self) -> bool {
        self.source_hard || self.source_soft
    }
}
