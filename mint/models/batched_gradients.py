"""Per-image gradients from one batched backward pass: the fast path of `GradientReader`.

Autograd sums parameter gradients over a batch, but each layer's per-image gradient follows from
what the layer saw: its input a_i and the gradient d_i of the image's loss at its output. A Linear
layer on vectors has g_i = d_i a_i^T, so |g_i| = |d_i| |a_i| without forming g_i; a convolution has
g_i = d_i unfold(a_i)^T, or, on small maps, its norm from the Gram matrices of both ("ghost norms",
Goodfellow 2015; Li et al. 2022); normalization layers have per-channel sums of d_i times the
normalized input. So one forward pass (which also yields the activations the detector reads) and
one backward pass replace a vector-Jacobian product per image (`torch.func.vmap`), which cost about
4x a forward pass through the whole paper CNN (docs/results.md, section 13).

Only layers of these exact types are read this way (a subclass may compute something else: timm's
BatchNormAct2d also applies an activation). Another owner of a requested parameter, a parameter
shared by two layers, a layer called twice in a forward pass, or a batch norm using batch statistics
sends the request to the per-image path; `GradientReader` also checks the first batch against it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

KNOWN = (nn.Linear, nn.Conv2d, nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)
ROW_BYTES = 64 << 20  # temporaries of a layer's per-image gradients held at once


class _Capture(torch.autograd.Function):
    """Identity whose backward hands the gradient at a layer's output to a list."""

    @staticmethod
    def forward(ctx, output: Tensor, slot: list) -> Tensor:
        ctx.slot = slot
        return output.clone()  # a new tensor: an in-place activation after it keeps our node intact

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        ctx.slot.append(grad)
        return grad, None


def _conv_padding(conv: nn.Conv2d) -> tuple[int, int] | None:
    """Explicit padding of a convolution, or None where `unfold` cannot reproduce it."""
    if conv.padding_mode != "zeros" or conv.groups != 1:
        return None
    if conv.padding == "valid":
        return (0, 0)
    if conv.padding == "same":
        total = [d * (k - 1) for d, k in zip(conv.dilation, conv.kernel_size, strict=True)]
        return None if any(t % 2 for t in total) else (total[0] // 2, total[1] // 2)
    return tuple(conv.padding)


def batched_owners(net: nn.Module, used: list[str]) -> dict[str, nn.Module] | None:
    """{module name: module} directly owning the used parameters, or None if one is not known here."""
    ids = [id(p) for _, p in net.named_parameters(remove_duplicate=False)]
    if len(ids) != len(set(ids)):
        return None  # a parameter shared by two layers: its gradient is a sum this path does not form
    modules, owners = dict(net.named_modules()), {}
    for name in used:
        owner, _, leaf = name.rpartition(".")
        module = modules.get(owner)
        if type(module) not in KNOWN or leaf not in ("weight", "bias"):
            return None
        if isinstance(module, nn.Conv2d) and _conv_padding(module) is None:
            return None
        if isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d) and module.running_mean is None:
            return None  # normalized by the batch's own statistics: images are not independent
        owners[owner] = module
    return owners


def _sum(t: Tensor, dims: tuple[int, ...]) -> Tensor:
    return t.sum(dims) if dims else t  # (`sum(())` would sum everything)


def _normalized(module: nn.Module, a: Tensor) -> tuple[Tensor, tuple[int, ...]]:
    """Group or layer norm's normalized input (before the affine part) and its affine's shared dims."""
    if isinstance(module, nn.LayerNorm):
        dims = tuple(range(1, a.dim() - len(module.normalized_shape)))
        return F.layer_norm(a, module.normalized_shape, eps=module.eps), dims
    return F.group_norm(a, module.num_groups, eps=module.eps), tuple(range(2, a.dim()))


def _layer(module: nn.Module, a: Tensor, d: Tensor, full: set[str]) -> dict[str, Tensor]:
    """Per-image gradients {leaf: (B, *shape)} of one layer; (B,) norms for the leaves not in `full`."""
    out: dict[str, Tensor] = {}
    if isinstance(module, nn.Linear) and a.dim() == 2:
        out["weight"] = d[:, :, None] * a[:, None, :] if "weight" in full else d.norm(dim=1) * a.norm(dim=1)
        out["bias"] = d  # (|d a^T| = |d| |a|: the norm without the outer product)
    elif isinstance(module, nn.Linear):
        a3, d3 = a.reshape(len(a), -1, a.shape[-1]), d.reshape(len(d), -1, d.shape[-1])  # (B, T, in|out)
        out["weight"] = torch.bmm(d3.transpose(1, 2), a3)  # (B, out, in)
        out["bias"] = d3.sum(1)
    elif isinstance(module, nn.Conv2d):
        out["weight"] = _conv_weight(module, a, d, "weight" in full)
        out["bias"] = d.flatten(2).sum(2)
    elif isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d):  # eval mode: its running statistics
        dims = tuple(range(2, a.dim()))  # every dim but batch and channel
        # sum d (a - mean) / std = (sum d a - mean sum d) / std: one pass over the map, not three
        out["bias"] = _sum(d, dims)
        inv_std = (module.running_var + module.eps).rsqrt()
        out["weight"] = (_sum(d * a, dims) - module.running_mean * out["bias"]) * inv_std
    else:  # group and layer norm: an affine weight and bias per channel (or per normalized element)
        x_hat, dims = _normalized(module, a)
        out["weight"], out["bias"] = _sum(d * x_hat, dims), _sum(d, dims)
    return {
        leaf: value if leaf in full or value.dim() == 1 else value.flatten(1).norm(dim=1)
        for leaf, value in out.items()
    }


def _ghost(conv: nn.Conv2d, d: Tensor) -> bool:
    """Whether the ghost norm (L x L Gram matrices) costs less than the gradient (C_out x k) itself."""
    n, length, k = d.shape[1], d[0, 0].numel(), conv.weight[0].numel()  # k = C_in * kh * kw
    return length * (k + n) < n * k


def _conv_weight(conv: nn.Conv2d, a: Tensor, d: Tensor, full: bool) -> Tensor:
    """Per-image weight gradients (B, *weight.shape) of a convolution, or their norms (B,)."""
    b, n = d.shape[:2]
    if not full and _ghost(conv, d):
        cols = F.unfold(a, conv.kernel_size, conv.dilation, _conv_padding(conv), conv.stride)  # (B, k, L)
        dd = d.flatten(2)  # (B, C_out, L)
        gram = torch.bmm(cols.transpose(1, 2), cols) * torch.bmm(dd.transpose(1, 2), dd)  # (B, L, L)
        return gram.sum((1, 2)).clamp_min(0).sqrt()
    # The weight gradient of one convolution with a group per image is every image's own gradient
    # (measured 1.2-4.8x faster on CPU than unfold and a batched matmul, for the paper CNN's layers).
    grouped = torch.ops.aten.convolution_backward(
        d.reshape(1, b * n, *d.shape[2:]),  # (B, C_out, H', W') -> (1, B*C_out, H', W')
        a.reshape(1, b * a.shape[1], *a.shape[2:]),
        conv.weight.new_empty(b * n, *conv.weight.shape[1:]),
        None, conv.stride, _conv_padding(conv), conv.dilation, False, [0, 0], b, [False, True, False],
    )[1]  # fmt: skip
    return grouped.view(b, *conv.weight.shape)


def _rows(module: nn.Module, a: Tensor, d: Tensor, full_weight: bool) -> int:
    """Images per chunk so that one layer's temporaries (not its wanted gradients) stay near `ROW_BYTES`."""
    per_image = a[0].numel() + d[0].numel()
    if isinstance(module, nn.Conv2d) and not full_weight and _ghost(module, d):  # unfolded input, Grams
        per_image += module.weight[0].numel() * d[0, 0].numel() + 2 * d[0, 0].numel() ** 2
    elif not full_weight and not (isinstance(module, nn.Linear) and a.dim() == 2):
        per_image += module.weight.numel()  # per-image gradients formed only for their norms
    return max(1, ROW_BYTES // (4 * per_image))


def batched_gradients(
    owners: dict[str, nn.Module],
    run: Callable[[Tensor], dict[str, Tensor]],
    x: Tensor,
    labels: Callable[[Tensor], Tensor],
    full: set[str],
    cotangent: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]],
) -> tuple[dict[str, Tensor], dict[str, Tensor], Tensor] | None:
    """One forward and one backward pass over a batch.

    Args:
        owners: from `batched_owners`.
        run: the target's forward pass, {node: (B, ...)} with its logits under "logits".
        x: normalized images (B, 3, H, W).
        labels: the classes whose loss is differentiated, from the logits (B, C).
        full: parameter names whose per-image gradients are wanted (the others: their norms).
        cotangent: (logits, labels) -> (unit direction of the loss's gradient at the logits (B, C),
            its norm (B,) in float64).

    Returns:
        The forward pass's outputs (detached), {parameter: (B, *shape) gradient or (B,) norm} for
        the unit direction, and the norms (B,) of the gradients at the logits; None if a layer ran
        more or fewer than once (the per-image path then answers).
    """
    slots: dict[str, list[Tensor]] = {name: [] for name in owners}
    inputs: dict[str, list[Tensor]] = {name: [] for name in owners}

    def hook(name: str) -> Callable:
        def capture(module: nn.Module, args: tuple, output: Tensor) -> Tensor | None:
            inputs[name].append(args[0].detach())
            if output.grad_fn is not None:  # the gradient its node receives: before any in-place op
                output.grad_fn.register_hook(lambda grad_in, grad_out: slots[name].append(grad_out[0]))
                return None
            # The graph starts at the first layer read (a leaf there), so the backward pass stops
            # there too: the last layer's gradients cost no backward pass through the convolutions.
            return _Capture.apply(output.detach().requires_grad_(True), slots[name])

        return capture

    handles = [module.register_forward_hook(hook(name)) for name, module in owners.items()]
    try:
        with torch.enable_grad():
            out = run(x)
            logits = out["logits"]
            direction, scale = cotangent(logits, labels(logits.detach()))
            if any(len(seen) != 1 for seen in inputs.values()):
                return None
            torch.autograd.backward(logits, direction)
    finally:
        for handle in handles:
            handle.remove()
    if any(len(slot) != 1 or slot[0] is None for slot in slots.values()):
        return None
    grads: dict[str, Tensor] = {}
    for name, module in owners.items():
        wanted = {p.rpartition(".")[2] for p in full if p.rpartition(".")[0] == name}
        grads |= _module_gradients(name, module, inputs[name][0], slots[name][0], wanted)
    return {k: v.detach() for k, v in out.items()}, grads, scale


def _module_gradients(
    name: str, module: nn.Module, a: Tensor, d: Tensor, wanted: set[str]
) -> dict[str, Tensor]:
    """{parameter: per-image gradients or norms} of one layer, from its input `a` and output gradient `d`."""
    grads = {}
    rows = _rows(module, a, d, "weight" in wanted)
    parts = [_layer(module, a[i : i + rows], d[i : i + rows], wanted) for i in range(0, len(a), rows)]
    for leaf in parts[0]:
        if getattr(module, leaf, None) is not None:  # (a layer built without bias has none)
            values = [part[leaf] for part in parts]
            grads[f"{name}.{leaf}"] = values[0] if len(values) == 1 else torch.cat(values)
    return grads
