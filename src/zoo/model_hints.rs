//! What a model's first forward pass says when the model does not fit what zoo-select feeds it:
//! libtorch's errors say what failed, these hints say why and what to do (a model for one
//! channel or one input size), and a tap's shape can betray a layout declared the wrong way.

use crate::config::Layout;
use crate::error::Error;

use super::spec::ModelSpec;

/// A 4-D tap whose map is square under the other layout and not under the declared one, for
/// the probe's square image, is almost surely laid out the other way: pooled over the wrong
/// axes, its features would be silently wrong. A heuristic, so a warning.
pub(super) fn layout_warning(shape: &[i64], layout: Layout) -> Option<String> {
    let [_, a, b, c] = shape else { return None };
    let (declared, other, say) = match layout {
        Layout::Nchw => ((b, c), (a, b), "nhwc"),
        Layout::Nhwc => ((a, b), (b, c), "nchw"),
    };
    (declared.0 != declared.1 && other.0 == other.1).then(|| {
        format!(
            "its output {shape:?} is a square map only if read as `layout: {say}`, for a square \
             input; if that is how the model lays out its 4-D outputs, set `layout: {say}`, or the \
             features are pooled over the wrong axes"
        )
    })
}

/// libtorch's shape errors at the first forward say what failed, not why. The usual causes, a
/// model made for other than 3 channels or for one input size, are named with the next step;
/// other errors pass as they are.
pub(super) fn explain_forward(spec: &ModelSpec, e: Error) -> Error {
    // Only a forward's own failure: rewriting or loading errors have other causes.
    let Error::Torch {
        message,
        context: "running forward_taps",
        ..
    } = &e
    else {
        return e;
    };
    let size = spec.input.size;
    let exported = spec
        .manifest
        .as_deref()
        .and_then(super::manifest::Manifest::exported_size);
    let hint = if message.contains("channels, but got 3 channels") {
        "zoo-select feeds 3-channel RGB images (grey ones replicated to three channels) and the \
         model must take 3 channels: re-export it with a 3-channel stem, or wrap it to turn 3 \
         channels into what it takes"
            .to_owned()
    } else if message.contains("mat1 and mat2 shapes cannot be multiplied")
        || exported.is_some_and(|e| e != size)
    {
        fixed_size_hint(exported, size)
    } else {
        return e;
    };
    Error::ModelInput {
        model: spec.name.clone(),
        size,
        message: message.clone(),
        hint,
    }
}

fn fixed_size_hint(exported: Option<u32>, size: u32) -> String {
    let set = match exported {
        Some(e) if e != size => format!(
            "its manifest says it was exported at {e}: set `input.size: {e}` (or leave it out)"
        ),
        _ => "set `input.size` to the size it was exported at".to_owned(),
    };
    format!(
        "the model seems to take one input size only: {set}, or export it with adaptive pooling \
         before its classifier"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_square_only_under_the_other_layout_is_warned_about() {
        // A swin-like (N, H, W, C) output read as NCHW, and a ResNet-like (N, C, H, W) one read
        // as NHWC.
        let w = layout_warning(&[1, 56, 56, 96], Layout::Nchw).unwrap();
        assert!(
            w.contains("square map only if read as `layout: nhwc`"),
            "{w}"
        );
        let w = layout_warning(&[1, 64, 56, 56], Layout::Nhwc).unwrap();
        assert!(w.contains("set `layout: nchw`"), "{w}");
        // Right as declared, ambiguous, or not a map at all: nothing to say.
        assert_eq!(layout_warning(&[1, 64, 56, 56], Layout::Nchw), None);
        assert_eq!(layout_warning(&[1, 56, 56, 96], Layout::Nhwc), None);
        assert_eq!(layout_warning(&[1, 7, 7, 7], Layout::Nhwc), None);
        assert_eq!(layout_warning(&[1, 256, 14, 13], Layout::Nchw), None);
        assert_eq!(layout_warning(&[1, 64, 8], Layout::Nchw), None);
    }
}
