//! Which libtorch device a run uses. `auto` takes the first CUDA device when libtorch sees one;
//! asking for CUDA where there is none is an error, never a quiet fall-back to a CPU run that
//! would take a hundred times longer.

mod fence;
mod transfer;

pub use fence::Fence;
pub use transfer::{staging, start_download, to_pageable, upload, upload_staged, Download};

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

/// `cpu` or `cuda`: what results made on a device depend on besides the data and the model
/// (kernels and rounding differ between kinds, not between two cards of one kind).
pub fn kind(device: Device) -> String {
    match device {
        Device::Cpu => "cpu".into(),
        Device::Cuda(_) => "cuda".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// Does on `device` what its first convolution and matrix product would otherwise do inside the
/// first model's load: on a GPU, create the CUDA context and the cuDNN and cuBLAS handles.
pub fn start(device: Device) -> Result<(), tch::TchError> {
    if device == Device::Cpu {
        return Ok(());
    }
    let x = tch::Tensor::f_ones([1, 1, 4, 4], (tch::Kind::Float, device))?;
    let w = tch::Tensor::f_ones([1, 1, 3, 3], (tch::Kind::Float, device))?;
    let y = x.f_conv2d(&w, None::<&tch::Tensor>, [1, 1], [0, 0], [1, 1], 1)?;
    let m = y.f_view([2, 2])?;
    m.f_matmul(&m)?
        .f_sum(tch::Kind::Float)?
        .f_double_value(&[])?;
    Ok(())
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
