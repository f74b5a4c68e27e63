//! Which libtorch device a run uses. `auto` takes the first CUDA device when libtorch sees one;
//! asking for CUDA where there is none is an error, never a quiet fall-back to a CPU run that
//! would take a hundred times longer.

use tch::{Cuda, Device};

use crate::error::{Error, Result};

/// Parses `auto`, `cpu`, `cuda` or `cuda:N` and checks the device exists.
pub fn resolve(spec: &str) -> Result<Device> {
    let err = |reason: String| Error::Device {
        requested: spec.to_owned(),
        reason,
    };
    let spec_trim = spec.trim();
    let index = match spec_trim {
        "auto" => {
            return Ok(if Cuda::is_available() {
                Device::Cuda(0)
            } else {
                Device::Cpu
            })
        }
        "cpu" => return Ok(Device::Cpu),
        "cuda" => 0,
        other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(i)) => i,
            _ => return Err(err("expected auto, cpu, cuda or cuda:N".into())),
        },
    };
    if !Cuda::is_available() {
        return Err(err(
            "CUDA is not available to libtorch here (no NVIDIA driver or GPU found); use `--device cpu`".into(),
        ));
    }
    let count = Cuda::device_count() as usize;
    if index >= count {
        return Err(err(format!(
            "there are {count} CUDA device(s), numbered from 0"
        )));
    }
    Ok(Device::Cuda(index))
}

/// How a device is named in reports: `cpu` or `cuda:N`.
pub fn label(device: Device) -> String {
    match device {
        Device::Cuda(i) => format!("cuda:{i}"),
        Device::Cpu => "cpu".to_owned(),
        other => format!("{other:?}").to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names() {
        assert_eq!(resolve("cpu").unwrap(), Device::Cpu);
        let err = resolve("gpu").unwrap_err().to_string();
        assert_eq!(err, "device `gpu`: expected auto, cpu, cuda or cuda:N");
        assert!(resolve("cuda:x").is_err());
        if !Cuda::is_available() {
            assert_eq!(resolve("auto").unwrap(), Device::Cpu);
            let err = resolve("cuda:0").unwrap_err().to_string();
            assert!(
                err.starts_with("device `cuda:0`: CUDA is not available"),
                "{err}"
            );
        }
    }
}
