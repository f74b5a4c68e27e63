//! The bytes of a statistics file: the magic `ZSSTATS\n`, the format version (u32), the header
//! length (u64) and the header (JSON), the payload (the header's arrays, f64 or f32
//! little-endian, row-major, in header order, then any raw rows), and a CRC-32 of everything
//! before it.
//!
//! Files are written through atomic_file.rs (synced, then renamed over the target), so a kill
//! at any moment leaves either the old file or the new one, never half of one.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use tch::{Device, Kind, Tensor};

/// Bumped whenever the layout or the meaning of a stored sum changes.
pub const FORMAT_VERSION: u32 = 1;

const MAGIC: &[u8; 8] = b"ZSSTATS\n";
/// f64 values converted per chunk between tensors and bytes.
const CHUNK: i64 = 1 << 20;

pub enum WriteError {
    Io(std::io::Error),
    Torch(tch::TchError),
}

impl From<std::io::Error> for WriteError {
    fn from(e: std::io::Error) -> Self {
        WriteError::Io(e)
    }
}

impl From<tch::TchError> for WriteError {
    fn from(e: tch::TchError) -> Self {
        WriteError::Torch(e)
    }
}

/// A writer that keeps the CRC-32 of what went through it.
pub struct CrcWriter<W: Write> {
    inner: W,
    crc: crc32fast::Hasher,
}

impl<W: Write> Write for CrcWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes the header, then the payload by `body`, then the checksum, atomically.
pub fn write_atomic(
    path: &Path,
    header: &[u8],
    body: impl FnOnce(&mut CrcWriter<BufWriter<File>>) -> Result<(), WriteError>,
) -> Result<(), WriteError> {
    let staged = crate::atomic_file::Staged::new(path, ".zss-")?;
    let mut w = CrcWriter {
        inner: BufWriter::with_capacity(1 << 20, staged.file().try_clone()?),
        crc: crc32fast::Hasher::new(),
    };
    w.write_all(MAGIC)?;
    w.write_all(&FORMAT_VERSION.to_le_bytes())?;
    w.write_all(&(header.len() as u64).to_le_bytes())?;
    w.write_all(header)?;
    body(&mut w)?;
    let crc = w.crc.clone().finalize();
    let mut inner = w.inner;
    inner.write_all(&crc.to_le_bytes())?;
    inner.into_inner().map_err(|e| e.into_error())?;
    staged.commit(true)?;
    Ok(())
}

/// Writes a tensor's values, in chunks, whatever its device: f32 tensors as f32 (feature rows),
/// everything else as f64.
pub fn write_tensor(w: &mut impl Write, t: &Tensor) -> Result<(), WriteError> {
    let f32 = t.kind() == Kind::Float;
    let flat = t
        .f_to_kind(if f32 { Kind::Float } else { Kind::Double })?
        .f_to_device(Device::Cpu)?
        .f_contiguous()?
        .f_view([-1])?;
    let n = flat.size()[0];
    let mut bytes = Vec::new();
    let mut start = 0;
    while start < n {
        let len = CHUNK.min(n - start);
        let chunk = flat.f_narrow(0, start, len)?;
        bytes.clear();
        if f32 {
            let mut values = vec![0f32; len as usize];
            chunk.f_copy_data(&mut values, len as usize)?;
            bytes.extend(values.iter().flat_map(|v| v.to_le_bytes()));
        } else {
            let mut values = vec![0f64; len as usize];
            chunk.f_copy_data(&mut values, len as usize)?;
            bytes.extend(values.iter().flat_map(|v| v.to_le_bytes()));
        }
        w.write_all(&bytes)?;
        start += len;
    }
    Ok(())
}

/// The payload of an open file: reads arrays in order, checking the checksum at the end.
pub struct Payload {
    reader: BufReader<File>,
    crc: crc32fast::Hasher,
    /// Payload bytes not read yet (the checksum excluded).
    left: u64,
}

impl Read for Payload {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = buf.len().min(self.left as usize);
        let n = self.reader.read(&mut buf[..want])?;
        self.crc.update(&buf[..n]);
        self.left -= n as u64;
        Ok(n)
    }
}

impl Payload {
    /// The next array, of `shape`, as an f64 (or, with `f32`, f32) tensor on `device`.
    pub fn read_tensor(
        &mut self,
        shape: &[i64],
        f32: bool,
        device: Device,
    ) -> Result<Tensor, String> {
        if shape.iter().any(|&d| d < 0) {
            return Err(format!("an array has shape {shape:?}"));
        }
        let width = if f32 { 4 } else { 8 };
        let numel: u64 = shape.iter().map(|&d| d as u64).product();
        if numel.saturating_mul(width) > self.left {
            return Err("the file ends before its arrays do".into());
        }
        let mut bytes = vec![0u8; numel as usize * width as usize];
        self.read_exact(&mut bytes)
            .map_err(|e| format!("cannot read: {e}"))?;
        let tensor = if f32 {
            let values: Vec<f32> = bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            Tensor::f_from_slice(&values)
        } else {
            let values: Vec<f64> = bytes
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
                .collect();
            Tensor::f_from_slice(&values)
        };
        tensor
            .and_then(|t| t.f_view(shape))
            .and_then(|t| t.f_to_device(device))
            .map_err(|e| crate::error::torch_message(&e))
    }

    /// Checks that the payload was read to its end and that the checksum matches.
    pub fn finish(mut self) -> Result<(), String> {
        if self.left != 0 {
            return Err(format!(
                "{} bytes past the arrays its header lists; the file is damaged: delete it and run the pass again",
                self.left
            ));
        }
        let mut stored = [0u8; 4];
        self.reader
            .read_exact(&mut stored)
            .map_err(|_| "the file ends early (no checksum): delete it and run the pass again")?;
        if u32::from_le_bytes(stored) != self.crc.finalize() {
            return Err(
                "checksum mismatch: the file is corrupt; delete it and run the pass again".into(),
            );
        }
        Ok(())
    }
}

/// Opens a file: checks the magic and the version, returns the header's JSON and the payload.
pub fn open(path: &Path) -> Result<(Vec<u8>, Payload), String> {
    let file = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let len = file
        .metadata()
        .map_err(|e| format!("cannot open: {e}"))?
        .len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut crc = crc32fast::Hasher::new();
    let mut fixed = [0u8; 20];
    if len < 24 || reader.read_exact(&mut fixed).is_err() || &fixed[..8] != MAGIC {
        return Err("not a zoo-select statistics file".into());
    }
    crc.update(&fixed);
    let version = u32::from_le_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]);
    if version != FORMAT_VERSION {
        return Err(format!(
            "statistics format version {version}, but this zoo-select ({}) reads version {FORMAT_VERSION}; run the pass again with this version",
            env!("CARGO_PKG_VERSION")
        ));
    }
    let header_len = u64::from_le_bytes(fixed[12..20].try_into().unwrap_or([0; 8]));
    if header_len > len - 24 {
        return Err("the file ends inside its header; the file is damaged: delete it and run the pass again".into());
    }
    let mut header = vec![0u8; header_len as usize];
    reader
        .read_exact(&mut header)
        .map_err(|e| format!("cannot read its header: {e}"))?;
    crc.update(&header);
    Ok((
        header,
        Payload {
            reader,
            crc,
            left: len - 24 - header_len,
        },
    ))
}
