"""A classifier that DP-SGD can train: no layer that mixes the images of a batch or keeps statistics.

DP-SGD clips each image's gradient separately, so every trainable layer must give per-image
gradients and must not learn from other images of its batch: BatchNorm does both (its running
statistics are a second, unprivatized channel out of the training data). Opacus' `ModuleValidator`
swaps such layers for privacy-safe ones (BatchNorm -> GroupNorm); what it cannot swap is named.
"""

from __future__ import annotations

from torch import nn

from mint.errors import MintError

INSTALL = "pip install 'mint-audit[dp]'"


def require_opacus():
    """The `opacus` package, or a message that says how to install it."""
    try:
        import opacus
    except ImportError:
        raise MintError(f"DP-SGD needs Opacus, which is not installed: {INSTALL}") from None
    return opacus


def make_dp_compatible(net: nn.Module) -> nn.Module:
    """`net` with every layer DP-SGD cannot train replaced (deterministically: checkpoints load again).

    Raises:
        MintError: a layer Opacus cannot replace, or a trainable layer that keeps buffers, by name.
    """
    require_opacus()
    from opacus.validators import ModuleValidator

    fixed = ModuleValidator.fix(net)
    for name, layer in fixed.named_modules():
        if getattr(layer, "inplace", False):  # an in-place ReLU would overwrite what the per-image hooks read
            layer.inplace = False
        check = ModuleValidator.VALIDATORS.get(type(layer))
        errors = check(layer) if check else []
        if errors:
            reason = str(errors[0]).split(". ")[0]
            where = f"{name or 'the network'!r} ({type(layer).__name__})"
            raise MintError(f"DP-SGD cannot train layer {where}: {reason}")
        trainable = any(p.requires_grad for p in layer.parameters(recurse=False))
        if trainable and any(True for _ in layer.buffers(recurse=False)):
            raise MintError(
                f"DP-SGD cannot train layer {name!r} ({type(layer).__name__}): it has both trainable "
                "weights and buffers (statistics learned from the batch, outside DP-SGD's clipping and "
                "noise). Replace it with a layer without buffers, or freeze it."
            )
    return fixed
