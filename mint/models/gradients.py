"""Per-image gradients of the target's loss, read like layers (gradient MINT).

A member was pulled toward its label by training, so the gradient of its loss is small and points
where few others do. A detector reads it through names in `layers`, beside activations:

- `grad:<module>`: the gradient of the image's loss with respect to that module's parameters
  (weights and bias, flattened), e.g. `grad:layer8` (the last dense layer of the paper's CNN);
- `gradnorm:<module>` / `gradnorm:all`: the log of the gradient's norm for each parameter tensor
  of that module (or of the whole network), one number each.

The loss is the cross-entropy of the image's label (the predicted class when no label is given, as
in an audit of unlabelled images). Its gradient at the logits, p - onehot(y), is computed in
float64 and split into its norm s and a unit direction u: the direction is pulled back through the
network in float32 (`torch.func`: one vector-Jacobian product per image, `vmap` over the batch), the
norm multiplies afterwards, and the log norms add log s in float64. A memorized member's loss
gradient is about e^-margin: in float32 it would round to exactly 0 (every member tied); this way the
norms stay ordered, and only the raw `grad:` values underflow, where the norms do not.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.func import functional_call, vjp, vmap

from mint.errors import MintError

GRAD, GRADNORM = "grad:", "gradnorm:"
ALL = "all"
CHUNK_BYTES = 256 << 20  # per-image gradients held at once (bounded memory whatever the batch size)


def is_gradient(name: str) -> bool:
    """Whether a layer name asks for gradient features."""
    return name.startswith((GRAD, GRADNORM))


class GradientReader:
    """Gradient features of a network (its parameters stay frozen: only the loss is differentiated).

    Args:
        net: the target's network (a PyTorch module returning logits).
        names: `grad:<module>` / `gradnorm:<module>` / `gradnorm:all` requests.
    """

    def __init__(self, net: nn.Module, names: list[str]) -> None:
        if hasattr(net, "read"):  # an exported or TorchScript program: read from its saved graph
            raise MintError(
                f"gradient features ({', '.join(names)}) need the target's network as PyTorch modules; "
                "a TorchScript or exported program has no differentiable path here (a frozen TorchScript "
                "file has none at all). Give the weights (TorchvisionTarget, TimmTarget, FactoryTarget)"
            )
        self.net, self.names = net, list(names)
        params = dict(net.named_parameters())
        owners = [m for m, module in net.named_children() if any(True for _ in module.parameters())]
        self.params: dict[str, list[str]] = {}  # request -> the parameter names it reads
        for name in names:
            module = name.split(":", 1)[1]
            if name.startswith(GRADNORM) and module == ALL:
                chosen = list(params)
            else:
                chosen = [p for p in params if p.startswith(module + ".")]
            if not chosen:
                raise MintError(
                    f"no parameters for {name!r}: {module!r} is not a module of the target with weights; "
                    f"valid: {', '.join(GRAD + m for m in owners[:40])}{' ...' if len(owners) > 40 else ''} "
                    f"(or a module nested in one), {GRADNORM}<module> or {GRADNORM}{ALL}"
                )
            self.params[name] = chosen
        self.used = sorted({p for chosen in self.params.values() for p in chosen})
        self.shapes = {
            name: (sum(params[p].numel() for p in chosen) if name.startswith(GRAD) else len(chosen),)
            for name, chosen in self.params.items()
        }

    def __call__(self, x: Tensor, labels: Tensor) -> dict[str, Tensor]:
        """{name: (B, features)} float32 for normalized images x (B, 3, H, W) and classes labels (B,)."""
        params = {p: t.detach() for p, t in self.net.named_parameters() if p in self.used}
        per_image = sum(params[p].numel() for p in self.used) * 4
        chunk = max(1, CHUNK_BYTES // per_image)
        out: dict[str, list[Tensor]] = {name: [] for name in self.names}
        for start in range(0, len(x), chunk):
            part = slice(start, start + chunk)
            for name, value in self._chunk(params, x[part], labels[part]).items():
                out[name].append(value)
        return {name: torch.cat(values) for name, values in out.items()}

    def _chunk(self, params: dict[str, Tensor], x: Tensor, labels: Tensor) -> dict[str, Tensor]:
        def pulled_back(image: Tensor, label: Tensor) -> tuple[dict[str, Tensor], Tensor]:
            """One image (3, H, W): J^T u for the loss's direction u at the logits, and its size s."""
            logits, back = vjp(lambda p: functional_call(self.net, p, (image[None],))[0], params)
            # p - onehot(y), its true-class entry written as -sum_{j != y} p_j: 1 - p_y would round
            # to 0 where p_y rounds to 1, the other classes' probabilities stay exact.
            prob, y = torch.softmax(logits.double(), 0), label[None]
            cotangent = prob.scatter(0, y, -prob.scatter(0, y, 0.0).sum(0, keepdim=True))  # (C,) float64
            scale = cotangent.norm()
            return back((cotangent / scale.clamp_min(1e-300)).to(logits.dtype))[0], scale

        with torch.autocast(x.device.type, enabled=False):  # float32 directions, also under mixed precision
            grads, scale = vmap(pulled_back)(x.float(), labels.long())  # {param: (B, *shape)}, (B,) float64
        log_scale = scale.clamp_min(1e-300).log()
        out = {}
        for name, chosen in self.params.items():
            if name.startswith(GRADNORM):  # (B, tensors): log |g| = log s + log |J^T u|
                norms = torch.stack([grads[p].flatten(1).double().norm(dim=1) for p in chosen], 1)
                out[name] = (log_scale[:, None] + norms.clamp_min(1e-300).log()).float()
            else:  # (B, numel): s * J^T u
                flat = torch.cat([grads[p].flatten(1) for p in chosen], 1)
                out[name] = (flat.double() * scale[:, None]).float()
        return out
