//! Standard output, written so that a reader that went away (`zoo-select layers m.pt | head`)
//! ends the program quietly instead of panicking it.

/// Writes to stdout; a broken pipe comes back as an error for `main` to recognise.
pub fn write_stdout(text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}
