//! Lists an ImageFolder tree: one sub-folder per class, classes sorted by name, files in sorted
//! order (nested folders included), as torchvision's ImageFolder does, so labels and the
//! `max_per_class` subset are the same on every machine.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub path: PathBuf,
    /// Index into `ImageFolder::classes`.
    pub label: usize,
    /// Position in the whole listing (`ImageFolder::items`), whatever part of it a pass reads.
    pub index: usize,
}

#[derive(Debug, Clone)]
pub struct ImageFolder {
    pub root: PathBuf,
    /// Class folders that hold at least one file, sorted by name.
    pub classes: Vec<String>,
    /// Grouped by class, each class in sorted file order.
    pub items: Vec<Item>,
    /// Class folders without any file: warned about and left out of `classes`.
    pub empty_classes: Vec<String>,
    /// Files directly under the root, which belong to no class and are ignored.
    pub stray_files: usize,
}

/// Lists the images under `root`. Hidden files (a leading `.`) are ignored; every other file
/// is an image candidate, so a stray non-image is reported as skipped rather than ignored.
pub fn scan(root: &Path, max_per_class: Option<usize>) -> Result<ImageFolder> {
    let dataset_err = |message: String| Error::Dataset {
        root: root.to_owned(),
        message,
    };
    let meta =
        std::fs::metadata(root).map_err(|e| dataset_err(format!("cannot open the folder: {e}")))?;
    if !meta.is_dir() {
        return Err(dataset_err(
            "not a folder; expected one sub-folder per class".into(),
        ));
    }
    let mut class_dirs = Vec::new();
    let mut stray_files = 0;
    for entry in read_dir_sorted(root)? {
        if is_hidden(&entry) {
            continue;
        }
        if entry.is_dir() {
            class_dirs.push(entry);
        } else {
            stray_files += 1;
        }
    }
    if class_dirs.is_empty() {
        return Err(dataset_err(
            "no class sub-folders; expected one sub-folder per class (ImageFolder layout)".into(),
        ));
    }
    let mut folder = ImageFolder {
        root: root.to_owned(),
        classes: vec![],
        items: vec![],
        empty_classes: vec![],
        stray_files,
    };
    let mut singles = Vec::new();
    for dir in class_dirs {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut files = Vec::new();
        collect_files(root, &dir, &mut files)?;
        if let Some(max) = max_per_class {
            files.truncate(max);
        }
        if files.is_empty() {
            folder.empty_classes.push(name);
            continue;
        }
        if files.len() == 1 {
            singles.push(name.clone());
        }
        let label = folder.classes.len();
        folder.classes.push(name);
        folder.items.extend(files.into_iter().map(|path| Item {
            path,
            label,
            index: 0,
        }));
    }
    if let Some(said) = single_images(&singles) {
        tracing::warn!(
            "{said}; k-NN (leave-one-out) and GBC (class variances) need at least two images per \
             class: add images to those classes, or remove their folders"
        );
    }
    for (i, item) in folder.items.iter_mut().enumerate() {
        item.index = i;
    }
    if folder.classes.len() < 2 {
        return Err(Error::TooFewClasses {
            root: root.to_owned(),
            found: folder.classes.len(),
            names: class_list(&folder.classes),
        });
    }
    Ok(folder)
}

/// The metrics whose score needs at least two images of each class, and what one image does.
pub const TWO_PER_CLASS: [(&str, &str); 2] = [
    (
        "knn",
        "k-NN's leave-one-out finds no other image of such a class, so its image always counts \
         as misclassified",
    ),
    (
        "gbc",
        "GBC's variance of such a class is zero and takes the 1e-4 floor",
    ),
];

/// Classes with a single image, counted and named (the first ten): `2 classes have a single
/// image: a, b`; None for none.
pub fn single_images(classes: &[String]) -> Option<String> {
    const SHOWN: usize = 10;
    let (first, rest) = classes.split_at(classes.len().min(SHOWN));
    let more = match rest.len() {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    let verb = if classes.len() == 1 {
        "class has"
    } else {
        "classes have"
    };
    (!classes.is_empty()).then(|| {
        format!(
            "{} {verb} a single image: {}{more}",
            classes.len(),
            first.join(", ")
        )
    })
}

pub(crate) fn class_list(classes: &[String]) -> String {
    if classes.is_empty() {
        String::new()
    } else {
        format!(" ({})", classes.join(", "))
    }
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("cannot list", dir, e))?;
    let mut paths = entries
        .map(|e| {
            e.map(|e| e.path())
                .map_err(|e| Error::io("cannot list", dir, e))
        })
        .collect::<Result<Vec<_>>>()?;
    paths.sort();
    Ok(paths)
}

/// Every file under `dir` in torchvision's order: folders sorted by their whole path as a string
/// (`sorted(os.walk(dir))`, so `b-c` comes before `b/x`), files sorted by name within each.
/// Symbolic links to folders are followed, as torchvision does; one that leads back to a folder
/// it is inside (or to the root) is an error: followed, it would list the same images again and
/// again, under this class, until the system refused the path.
fn collect_files(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    let id = |path: &Path| -> Result<(u64, u64)> {
        let meta = std::fs::metadata(path).map_err(|e| Error::io("cannot open", path, e))?;
        Ok((meta.dev(), meta.ino()))
    };
    let mut folders: Vec<(PathBuf, Vec<PathBuf>)> = Vec::new();
    // Each folder still to list, with the (device, inode) of the folders it is inside.
    let mut pending = vec![(dir.to_owned(), vec![(id(root)?, root.to_owned())])];
    while let Some((folder, mut above)) = pending.pop() {
        let here = id(&folder)?;
        if let Some((_, ancestor)) = above.iter().find(|(a, _)| *a == here) {
            return Err(Error::Dataset {
                root: root.to_owned(),
                message: format!(
                    "{} leads back to {} (a symbolic link loop); remove the link or point it elsewhere",
                    folder.display(),
                    ancestor.display()
                ),
            });
        }
        above.push((here, folder.clone()));
        let (dirs, files): (Vec<_>, Vec<_>) = read_dir_sorted(&folder)?
            .into_iter()
            .filter(|p| !is_hidden(p))
            .partition(|p| p.is_dir());
        pending.extend(dirs.into_iter().map(|d| (d, above.clone())));
        folders.push((folder, files));
    }
    folders.sort_by(|a, b| a.0.as_os_str().as_bytes().cmp(b.0.as_os_str().as_bytes()));
    out.extend(folders.into_iter().flat_map(|(_, files)| files));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(root: &Path, rel: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"x").unwrap();
    }

    #[test]
    fn lists_classes_and_files_in_sorted_order() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for f in [
            "a/sub-x/2.png",
            "a/sub/deep/1.png",
            "b/2.png",
            "b/1.png",
            "a/z.png",
            "a/sub/0.png",
            "a/.hidden",
            "c/.gitkeep",
            "stray.txt",
        ] {
            touch(root, f);
        }
        let folder = scan(root, None).unwrap();
        assert_eq!(folder.classes, ["a", "b"]);
        assert_eq!(folder.empty_classes, ["c"]);
        assert_eq!(folder.stray_files, 1);
        let rel: Vec<_> = folder
            .items
            .iter()
            .map(|i| (i.path.strip_prefix(root).unwrap().to_owned(), i.label))
            .collect();
        // As sorted(os.walk("a")): "a/sub-x" comes before "a/sub/deep" because '-' < '/'.
        let want: Vec<(PathBuf, usize)> = vec![
            ("a/z.png".into(), 0),
            ("a/sub/0.png".into(), 0),
            ("a/sub-x/2.png".into(), 0),
            ("a/sub/deep/1.png".into(), 0),
            ("b/1.png".into(), 1),
            ("b/2.png".into(), 1),
        ];
        assert_eq!(rel, want);

        let capped = scan(root, Some(1)).unwrap();
        assert_eq!(capped.items.len(), 2);
        assert_eq!(capped.items[1].path, root.join("b/1.png"));
    }

    #[test]
    fn a_symbolic_link_loop_is_an_error_not_a_relabelled_dataset() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        touch(root, "a/1.png");
        touch(root, "b/1.png");
        touch(root, "shared/x/1.png");
        // Links to folders elsewhere are followed, as torchvision follows them.
        std::os::unix::fs::symlink(root.join("shared/x"), root.join("a/linked")).unwrap();
        let folder = scan(root, None).unwrap();
        assert_eq!(folder.items.len(), 4);
        assert_eq!(folder.items[1].path, root.join("a/linked/1.png"));

        std::os::unix::fs::symlink(root.join("a"), root.join("a/linked/again")).unwrap();
        let err = scan(root, None).unwrap_err().to_string();
        let want = format!(
            "{} leads back to {} (a symbolic link loop); remove the link or point it elsewhere",
            root.join("a/linked/again").display(),
            root.join("a").display()
        );
        assert!(err.ends_with(&want), "{err}");

        std::fs::remove_file(root.join("a/linked/again")).unwrap();
        std::os::unix::fs::symlink(root, root.join("b/up")).unwrap();
        let err = scan(root, None).unwrap_err().to_string();
        assert!(err.contains("b/up leads back to"), "{err}");
    }

    #[test]
    fn classes_of_one_image_are_counted_and_named() {
        let names = |n: usize| (0..n).map(|i| format!("c{i}")).collect::<Vec<_>>();
        assert_eq!(single_images(&[]), None);
        assert_eq!(
            single_images(&names(1)).unwrap(),
            "1 class has a single image: c0"
        );
        assert_eq!(
            single_images(&names(2)).unwrap(),
            "2 classes have a single image: c0, c1"
        );
        assert!(single_images(&names(12))
            .unwrap()
            .ends_with("c8, c9 and 2 more"));
    }

    #[test]
    fn needs_two_classes() {
        let dir = tempfile::tempdir().unwrap();
        touch(dir.path(), "only/1.png");
        let err = scan(dir.path(), None).unwrap_err().to_string();
        assert!(
            err.ends_with(
                "1 class(es) with usable images (only); at least two are needed to compare classes"
            ),
            "{err}"
        );
        let err = scan(&dir.path().join("missing"), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot open the folder"), "{err}");
    }
}
