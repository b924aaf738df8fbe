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
network in float32 (one batched backward pass where the layers allow, `mint.models.batched_gradients`;
else `torch.func`: one vector-Jacobian product per image, `vmap` over the batch), the
norm multiplies afterwards, and the log norms add log s in float64. A memorized member's loss
gradient is about e^-margin: in float32 it would round to exactly 0 (every member tied); this way the
norms stay ordered, and only the raw `grad:` values underflow, where the norms do not.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.func import functional_call, vjp, vmap

from mint.errors import MintError
from mint.models.batched_gradients import batched_gradients, batched_owners

GRAD, GRADNORM = "grad:", "gradnorm:"
ALL = "all"
CHUNK_BYTES = 256 << 20  # per-image gradients held at once (bounded memory whatever the batch size)


CHECKED_CALLS = 2  # calls whose batched gradients are compared with the per-image ones (dry pass + 1)


def is_gradient(name: str) -> bool:
    """Whether a layer name asks for gradient features."""
    return name.startswith((GRAD, GRADNORM))


def loss_direction(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Unit direction (B, C) in the logits' dtype and float64 norm (B,) of the loss's gradient there.

    The gradient is p - onehot(y), its true-class entry written as -sum_{j != y} p_j: 1 - p_y would
    round to 0 where p_y rounds to 1, the other classes' probabilities stay exact.
    """
    prob, y = torch.softmax(logits.double(), 1), labels[:, None]
    cotangent = prob.scatter(1, y, -prob.scatter(1, y, 0.0).sum(1, keepdim=True))  # (B, C) float64
    scale = cotangent.norm(dim=1)
    return (cotangent / scale.clamp_min(1e-300)[:, None]).to(logits.dtype), scale


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
        self.full = {p for name, chosen in self.params.items() if name.startswith(GRAD) for p in chosen}
        self.owners = batched_owners(net, self.used)  # None: every batch goes through the per-image path
        self.checks_left = CHECKED_CALLS
        self.shapes = {
            name: (sum(params[p].numel() for p in chosen) if name.startswith(GRAD) else len(chosen),)
            for name, chosen in self.params.items()
        }

    def read(
        self, run: Callable[[Tensor], dict[str, Tensor]], x: Tensor, labels: Tensor | None
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """The target's outputs run(x) and its gradient features, from one pass where possible.

        Args:
            run: the target's forward pass on normalized images, {node: (B, ...), "logits": ...}.
            x: normalized images (B, 3, H, W).
            labels: classes (B,) whose loss is differentiated; None: the predicted ones.
        """
        pick = (lambda logits: logits.argmax(1)) if labels is None else (lambda logits: labels.long())
        if self.owners is not None and not torch.is_autocast_enabled(x.device.type):
            trainable = [p for p in self.net.parameters() if p.requires_grad]  # (a target's are frozen)
            try:  # only the loss is differentiated: no parameter's .grad is touched
                for p in trainable:
                    p.requires_grad_(False)
                done = batched_gradients(self.owners, run, x.float(), pick, self.full, loss_direction)
            finally:
                for p in trainable:
                    p.requires_grad_(True)
            if done is not None:
                out, grads, scale = done
                features = self._features(grads, scale)
                if self.checks_left > 0:
                    self.checks_left -= 1
                    if not self._agrees(features, x, pick(out["logits"])):
                        return out, self(x, pick(out["logits"]))
                return out, features
            self.owners = None  # a layer ran more or less than once: the per-image path from now on
        out = run(x)
        return out, self(x, pick(out["logits"]))

    def _agrees(self, features: dict[str, Tensor], x: Tensor, labels: Tensor) -> bool:
        """Check the batched features of a few images against the per-image path (once or twice)."""
        exact = self(x[:4], labels[:4])
        for name, value in exact.items():
            tolerance = 1e-3 * value.abs().max().clamp_min(1e-30) if name.startswith(GRAD) else 1e-3
            if not torch.allclose(features[name][:4], value, rtol=1e-3, atol=float(tolerance)):
                warnings.warn(
                    f"gradient features: the batched path disagreed with the per-image one on {name!r} "
                    "for this network; using the per-image path (exact, about 2x slower)",
                    stacklevel=3,
                )
                self.owners = None
                return False
        return True

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
            logits, back = vjp(lambda p: functional_call(self.net, p, (image[None],)), params)
            direction, scale = loss_direction(logits, label[None])
            return back(direction)[0], scale[0]

        with torch.autocast(x.device.type, enabled=False):  # float32 directions, also under mixed precision
            grads, scale = vmap(pulled_back)(x.float(), labels.long())  # {param: (B, *shape)}, (B,) float64
        return self._features(grads, scale)

    def _features(self, grads: dict[str, Tensor], scale: Tensor) -> dict[str, Tensor]:
        """Features {request: (B, features)} from per-image gradients of the unit direction.

        `grads` holds {param: (B, *shape)} (or their norms (B,)); `scale` the sizes s (B,) in
        float64 that multiply them.
        """
        log_scale = scale.clamp_min(1e-300).log()
        out = {}
        for name, chosen in self.params.items():
            if name.startswith(GRADNORM):  # (B, tensors): log |g| = log s + log |J^T u|
                norms = torch.stack([_norm(grads[p]) for p in chosen], 1)
                out[name] = (log_scale[:, None] + norms.clamp_min(1e-300).log()).float()
            else:  # (B, numel): s * J^T u
                flat = torch.cat([grads[p].flatten(1) for p in chosen], 1)
                out[name] = (flat.double() * scale[:, None]).float()
        return out


def _norm(grad: Tensor) -> Tensor:
    """Norms (B,) in float64 of per-image gradients (B, *shape), or the norms themselves."""
    return grad.double() if grad.dim() == 1 else grad.flatten(1).double().norm(dim=1)
