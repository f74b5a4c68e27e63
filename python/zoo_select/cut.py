"""Ranking.cut(): the network to fine-tune, as a module. It keeps exactly what the network
computes up to and including the recommended layer, and returns that layer's output as the
tap saw it (before any pooling): for a ResNet cut at `layer3`, conv1 .. layer3 and a
(N, 256, H/16, W/16) feature map. Everything after it (later stages, global pooling, the source
classifier) is dropped; the new head (pooling and a classifier for the target's classes) is left
to the user, since fine-tuning recipes differ on it. The weights are the module's own, shared,
not copied: copy.deepcopy the result before training if the original must stay as it was."""

from torch import nn


def cut(module: nn.Module, layer: str) -> nn.Module:
    """`module` up to `layer` (a name from named_modules()); its forward returns that layer's
    output."""
    from torchvision.models.feature_extraction import create_feature_extractor

    if layer not in dict(module.named_modules()):
        raise ValueError(f"cut(): the module has no submodule {layer!r}")
    try:
        body = create_feature_extractor(module, return_nodes={layer: "features"})
    except Exception as e:  # torch.fx cannot trace data-dependent control flow
        raise ValueError(
            f"cut(): torch.fx cannot trace this {type(module).__name__} ({type(e).__name__}); "
            f"cut it by hand after {layer!r}"
        ) from None
    return Features(body)


class Features(nn.Module):
    """The cut network: the traced body, returning the recommended layer's output tensor."""

    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, x):
        return self.body(x)["features"]
