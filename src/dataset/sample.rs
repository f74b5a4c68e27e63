//! Which images the sample-level metrics (k-NN, ...) keep the feature rows of, when there are
//! more images than `max` rows can afford: a class-stratified subsample, fixed by the listing
//! alone, so every run, shard and machine keeps the same images. Each class keeps a share of
//! `max` proportional to its size (largest remainders get the leftover rows), and within a class
//! the images whose path hashes lowest, which spreads the sample over the class's files instead
//! of taking its first ones.

use sha2::{Digest, Sha256};

use super::folder::ImageFolder;

/// For every image of the listing, whether its rows are kept; all of them if `max` allows.
pub fn sample_flags(folder: &ImageFolder, max: usize) -> Vec<bool> {
    let n = folder.items.len();
    if n <= max {
        return vec![true; n];
    }
    let classes = folder.classes.len();
    let mut per_class: Vec<Vec<usize>> = vec![Vec::new(); classes];
    for item in &folder.items {
        per_class[item.label].push(item.index);
    }
    // Quotas: floor of the proportional share, then one more row for the largest remainders.
    let mut quota: Vec<usize> = per_class.iter().map(|c| c.len() * max / n).collect();
    let mut order: Vec<usize> = (0..classes).collect();
    order.sort_by_key(|&c| (std::cmp::Reverse(per_class[c].len() * max % n), c));
    let mut left = max - quota.iter().sum::<usize>();
    for c in order {
        if left == 0 {
            break;
        }
        if quota[c] < per_class[c].len() {
            quota[c] += 1;
            left -= 1;
        }
    }
    let mut keep = vec![false; n];
    for (c, members) in per_class.iter().enumerate() {
        let mut ranked: Vec<(u64, usize)> = members
            .iter()
            .map(|&i| {
                let rel = folder.items[i]
                    .path
                    .strip_prefix(&folder.root)
                    .unwrap_or(&folder.items[i].path);
                let digest = Sha256::digest(rel.to_string_lossy().as_bytes());
                let mut first = [0u8; 8];
                first.copy_from_slice(&digest[..8]);
                (u64::from_be_bytes(first), i)
            })
            .collect();
        ranked.sort_unstable();
        for &(_, i) in ranked.iter().take(quota[c]) {
            keep[i] = true;
        }
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::Item;
    use std::path::PathBuf;

    fn folder(per_class: &[usize]) -> ImageFolder {
        let mut items = Vec::new();
        for (label, &n) in per_class.iter().enumerate() {
            for i in 0..n {
                items.push(Item {
                    path: PathBuf::from(format!("/data/c{label}/{i:04}.png")),
                    label,
                    index: items.len(),
                });
            }
        }
        ImageFolder {
            root: PathBuf::from("/data"),
            classes: (0..per_class.len()).map(|c| format!("c{c}")).collect(),
            items,
            empty_classes: vec![],
            stray_files: 0,
        }
    }

    #[test]
    fn the_sample_is_stratified_and_fixed_by_the_listing() {
        let f = folder(&[500, 300, 7, 193]);
        let keep = sample_flags(&f, 100);
        assert_eq!(keep.iter().filter(|&&k| k).count(), 100);
        let per_class: Vec<usize> = (0..4)
            .map(|c| {
                f.items
                    .iter()
                    .filter(|i| i.label == c && keep[i.index])
                    .count()
            })
            .collect();
        // 50, 30, 0.7 and 19.3: floors 50, 30, 0, 19, then the largest remainder (0.7).
        assert_eq!(per_class, [50, 30, 1, 19]);
        assert_eq!(keep, sample_flags(&f, 100));
        // Not the first files of a class: spread over it.
        let first_kept: Vec<usize> = f
            .items
            .iter()
            .filter(|i| keep[i.index])
            .map(|i| i.index)
            .take(50)
            .collect();
        assert!(first_kept.iter().any(|&i| i >= 50), "{first_kept:?}");
        assert!(sample_flags(&f, 2000).iter().all(|&k| k));
    }
}
