//! Feature rows spilled to disk once host memory is past `memory_budget`.
//!
//! A row-kept class (`class_second.rs`) holds up to 2D raw rows, and with many classes and
//! wide layers those rows outgrow host memory long before its scatters would outgrow the
//! device. Rather than refuse such a run, the pass writes the rows of the largest classes to
//! one append-only temporary file per device part and reads each class back, alone, when its
//! rate is computed, it is folded into a scatter, merged or written to a statistics file. The
//! file is shared (`Arc`) by every chunk written to it and by every copy of the statistics
//! holding such a chunk, and is removed when the last of them is dropped. Bytes of a class that
//! later folds stay in the file until then: appending only keeps the disk bounded by the
//! rows' worst case the plan checks before the pass.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tch::{Device, Kind, TchError, Tensor};

/// The names spill files start with (tests look for leftovers by it).
pub const SPILL_PREFIX: &str = ".zoo-select-rows-";

/// An append-only temporary file of row chunks, removed when dropped.
pub struct SpillFile {
    file: tempfile::NamedTempFile,
    /// Bytes written so far: where the next chunk goes.
    end: Mutex<u64>,
}

/// One chunk of rows in a `SpillFile`: (rows, dim) values of `kind` at `offset`.
#[derive(Clone)]
pub struct Spilled {
    file: Arc<SpillFile>,
    offset: u64,
    rows: i64,
    dim: i64,
    kind: Kind,
}

impl SpillFile {
    /// A new empty spill file in `dir`.
    pub fn new_in(dir: &Path) -> io::Result<Arc<SpillFile>> {
        // `score` writes no statistics folder of its own until its rows spill.
        std::fs::create_dir_all(dir)?;
        let file = tempfile::Builder::new()
            .prefix(SPILL_PREFIX)
            .tempfile_in(dir)?;
        Ok(Arc::new(SpillFile {
            file,
            end: Mutex::new(0),
        }))
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Bytes written to the file, live or not.
    pub fn bytes(&self) -> u64 {
        self.end.lock().map_or(0, |e| *e)
    }

    fn handle(&self) -> &File {
        self.file.as_file()
    }

    /// Writes (rows, dim) f32 or f64 host rows at the end of the file.
    pub fn append(self: &Arc<Self>, rows: &Tensor) -> Result<Spilled, TchError> {
        let size = rows.size();
        let (n, dim) = match size.as_slice() {
            [n, d] => (*n, *d),
            _ => return Err(TchError::Shape(format!("spilling rows of shape {size:?}"))),
        };
        let kind = rows.kind();
        let flat = rows
            .f_to_device(Device::Cpu)?
            .f_contiguous()?
            .f_view([-1])?;
        let len = (n * dim) as usize;
        let bytes: Vec<u8> = match kind {
            Kind::Float => {
                let mut values = vec![0f32; len];
                flat.f_copy_data(&mut values, len)?;
                values.iter().flat_map(|v| v.to_le_bytes()).collect()
            }
            Kind::Double => {
                let mut values = vec![0f64; len];
                flat.f_copy_data(&mut values, len)?;
                values.iter().flat_map(|v| v.to_le_bytes()).collect()
            }
            other => return Err(TchError::Kind(format!("spilling rows of kind {other:?}"))),
        };
        let mut end = self
            .end
            .lock()
            .map_err(|_| TchError::Kind("a spill file's writer panicked".into()))?;
        let offset = *end;
        self.handle()
            .write_all_at(&bytes, offset)
            .map_err(|e| spill_io("cannot write feature rows to", self.path(), e))?;
        *end += bytes.len() as u64;
        Ok(Spilled {
            file: Arc::clone(self),
            offset,
            rows: n,
            dim,
            kind,
        })
    }
}

/// An I/O failure on a spill file, naming it (a full disk reads: no space left on device).
fn spill_io(what: &str, path: &Path, e: io::Error) -> TchError {
    TchError::Io(io::Error::new(
        e.kind(),
        format!("{what} {}: {e}", path.display()),
    ))
}

impl Spilled {
    pub fn rows(&self) -> i64 {
        self.rows
    }

    /// Bytes the chunk takes in its file.
    pub fn bytes(&self) -> u64 {
        (self.rows * self.dim) as u64 * self.kind.elt_size_in_bytes() as u64
    }

    pub fn path(&self) -> PathBuf {
        self.file.path().to_owned()
    }

    /// The chunk's rows, read back into host memory.
    pub fn read(&self) -> Result<Tensor, TchError> {
        let mut bytes = vec![0u8; self.bytes() as usize];
        self.file
            .handle()
            .read_exact_at(&mut bytes, self.offset)
            .map_err(|e| spill_io("cannot read feature rows back from", self.file.path(), e))?;
        let t = match self.kind {
            Kind::Double => {
                let v: Vec<f64> = bytes
                    .chunks_exact(8)
                    .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                    .collect();
                Tensor::f_from_slice(&v)?
            }
            _ => {
                let v: Vec<f32> = bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                Tensor::f_from_slice(&v)?
            }
        };
        t.f_view([self.rows, self.dim])
    }
}

/// An array for a statistics file: held, or a class's rows read back from memory and disk only
/// when the file is written, so writing holds one class's rows at a time.
pub enum Array {
    Held(Tensor),
    Rows(RowChunks),
}

/// A class's rows in the order they came, some in memory, some spilled.
pub struct RowChunks {
    pub chunks: Vec<Chunk>,
    pub dim: i64,
    pub kind: Kind,
}

/// Rows of one class: in host memory, or in a spill file.
pub enum Chunk {
    Memory(Tensor),
    Disk(Spilled),
}

impl Chunk {
    pub fn rows(&self) -> i64 {
        match self {
            Chunk::Memory(t) => t.size()[0],
            Chunk::Disk(s) => s.rows(),
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            Chunk::Memory(t) => t.kind(),
            Chunk::Disk(s) => s.kind,
        }
    }

    /// Host memory the chunk takes (0 once spilled).
    pub fn memory_bytes(&self) -> usize {
        match self {
            Chunk::Memory(t) => t.numel() * t.kind().elt_size_in_bytes(),
            Chunk::Disk(_) => 0,
        }
    }

    pub fn disk_bytes(&self) -> u64 {
        match self {
            Chunk::Memory(_) => 0,
            Chunk::Disk(s) => s.bytes(),
        }
    }

    /// The rows, in host memory (read back if spilled).
    pub fn load(&self) -> Result<Tensor, TchError> {
        match self {
            Chunk::Memory(t) => Ok(t.shallow_clone()),
            Chunk::Disk(s) => s.read(),
        }
    }

    /// The same rows, sharing their memory or their file.
    pub fn share(&self) -> Chunk {
        match self {
            Chunk::Memory(t) => Chunk::Memory(t.shallow_clone()),
            Chunk::Disk(s) => Chunk::Disk(s.clone()),
        }
    }
}

impl RowChunks {
    /// All the rows, (n, dim), in host memory.
    pub fn load(&self) -> Result<Tensor, TchError> {
        let parts = self
            .chunks
            .iter()
            .map(Chunk::load)
            .collect::<Result<Vec<_>, _>>()?;
        if parts.is_empty() {
            return Tensor::f_zeros([0, self.dim], (self.kind, Device::Cpu));
        }
        Tensor::f_cat(&parts, 0)
    }
}

impl Array {
    pub fn shape(&self) -> Vec<i64> {
        match self {
            Array::Held(t) => t.size(),
            Array::Rows(r) => vec![r.chunks.iter().map(Chunk::rows).sum(), r.dim],
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            Array::Held(t) => t.kind(),
            Array::Rows(r) => r.kind,
        }
    }

    /// The values, in memory.
    pub fn tensor(&self) -> Result<Tensor, TchError> {
        match self {
            Array::Held(t) => Ok(t.shallow_clone()),
            Array::Rows(r) => r.load(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_read_back_exactly_and_the_file_goes_with_the_last_chunk() {
        let dir = tempfile::tempdir().unwrap();
        let file = SpillFile::new_in(dir.path()).unwrap();
        let path = file.path().to_owned();
        let a = Tensor::randn([3, 5], (Kind::Float, Device::Cpu));
        let b = Tensor::randn([2, 5], (Kind::Double, Device::Cpu));
        let sa = file.append(&a).unwrap();
        let sb = file.append(&b).unwrap();
        assert_eq!(file.bytes(), 3 * 5 * 4 + 2 * 5 * 8);
        assert!(sa.read().unwrap().equal(&a));
        assert!(sb.read().unwrap().equal(&b));
        assert_eq!(sb.read().unwrap().kind(), Kind::Double);
        drop(file);
        drop(sa);
        assert!(path.exists(), "removed while a chunk still reads from it");
        drop(sb);
        assert!(!path.exists(), "{} left behind", path.display());
    }

    #[test]
    fn an_unwritable_folder_or_a_full_disk_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let not_a_dir = dir.path().join("file");
        std::fs::write(&not_a_dir, b"").unwrap();
        assert!(SpillFile::new_in(&not_a_dir).is_err());
        // /dev/full answers every write with ENOSPC, as a full disk does.
        let full = Path::new("/dev/full");
        if full.exists() {
            let spill = Arc::new(SpillFile {
                file: tempfile::NamedTempFile::from_parts(
                    File::options().read(true).write(true).open(full).unwrap(),
                    tempfile::TempPath::try_from_path(dir.path().join("never")).unwrap(),
                ),
                end: Mutex::new(0),
            });
            let err = spill
                .append(&Tensor::ones([2, 3], (Kind::Float, Device::Cpu)))
                .err()
                .expect("a write to a full disk succeeded");
            let text = err.to_string();
            assert!(
                text.contains("No space left on device") && !text.contains('\n'),
                "{text}"
            );
        }
    }
}
