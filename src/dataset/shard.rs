//! Which images a shard reads: within each class, in the folder's sorted order, every N-th
//! image starting at the k-th. Deterministic on every machine (the listing is sorted), and
//! balanced: each class's images split between the shards to within one.

use super::folder::Item;

/// The items of shard `index` (from 1) of `count`.
pub fn shard_items(items: &[Item], index: usize, count: usize) -> Vec<Item> {
    let mut seen: Vec<usize> = Vec::new();
    items
        .iter()
        .filter(|item| {
            if seen.len() <= item.label {
                seen.resize(item.label + 1, 0);
            }
            let position = seen[item.label];
            seen[item.label] += 1;
            position % count == index - 1
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn items(per_class: &[usize]) -> Vec<Item> {
        per_class
            .iter()
            .enumerate()
            .flat_map(|(label, &n)| {
                (0..n).map(move |i| Item {
                    path: PathBuf::from(format!("{label}/{i}.png")),
                    label,
                    index: 0,
                })
            })
            .collect()
    }

    #[test]
    fn shards_partition_each_class_evenly() {
        let all = items(&[7, 3, 10]);
        for count in [1, 3, 4] {
            let shards: Vec<Vec<Item>> = (1..=count).map(|k| shard_items(&all, k, count)).collect();
            let mut union: Vec<Item> = shards.iter().flatten().cloned().collect();
            union.sort_by(|a, b| a.path.cmp(&b.path));
            let mut sorted = all.clone();
            sorted.sort_by(|a, b| a.path.cmp(&b.path));
            assert_eq!(union, sorted, "N = {count}");
            for class in 0..3 {
                let sizes: Vec<usize> = shards
                    .iter()
                    .map(|s| s.iter().filter(|i| i.label == class).count())
                    .collect();
                let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
                assert!(hi - lo <= 1, "N = {count}, class {class}: {sizes:?}");
            }
        }
        assert_eq!(
            shard_items(&all, 2, 3)
                .iter()
                .filter(|i| i.label == 0)
                .map(|i| i.path.to_string_lossy().into_owned())
                .collect::<Vec<_>>(),
            ["0/1.png", "0/4.png"]
        );
    }
}
