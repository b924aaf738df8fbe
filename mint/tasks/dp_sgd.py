"""DP-SGD for a target with Opacus: per-image clipped gradients, Gaussian noise, a privacy accountant.

The guarantee (epsilon, delta) holds only for the training the accountant describes: batches drawn
by Poisson sampling with rate q, one noisy step per batch, a fixed number of epochs planned in
advance. `PrivateTraining.check_trainer` refuses what would silently break that (several devices
without a distributed sampler, gradient accumulation, an optimizer that re-evaluates its closure),
and `check_loader` that the training batches really are Poisson samples with the planned rate.
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import nn

from mint.errors import MintError
from mint.models.dp_compatible import require_opacus

ACCOUNTANTS = ("rdp", "prv")


def sample_rate(members: int, batch_size: int) -> float:
    """Poisson sampling rate q: one over the batches an epoch of `members` has (about batch / members)."""
    return 1.0 / math.ceil(members / batch_size)


def check_settings(epsilon: float, delta: float | None, max_grad_norm: float, accountant: str) -> None:
    """Refuse settings that give no guarantee, before anything trains (`members` is checked later)."""
    if not epsilon > 0 or math.isinf(epsilon):
        raise MintError(f"dp_epsilon must be a finite number > 0 (smaller is more private), got {epsilon}")
    if delta is not None and not 0 < delta < 1:
        raise MintError(f"dp_delta must be in (0, 1 / members), got {delta}")
    if not max_grad_norm > 0:
        raise MintError(f"dp_max_grad_norm (the per-image clipping norm) must be > 0, got {max_grad_norm}")
    if accountant not in ACCOUNTANTS:
        raise MintError(f"dp_accountant must be one of {ACCOUNTANTS}, got {accountant!r}")


def resolve_delta(delta: float | None, members: int) -> float:
    """delta, below 1 / members; by default members ** -1.1.

    A mechanism that publishes one random member's image outright is (0, 1/n)-DP, so delta must be
    below 1 / n to mean anything; n ** -1.1 is the usual choice just below it.
    """
    if delta is None:
        return float(members) ** -1.1
    if delta >= 1.0 / members:
        raise MintError(
            f"dp_delta = {delta} is not below 1 / members = 1 / {members} = {1.0 / members:.3g}: a "
            "mechanism that publishes one random member outright meets that delta. Give a smaller "
            f"delta, e.g. {float(members) ** -1.1:.3g} (members ** -1.1, the default)."
        )
    return delta


class PrivateTraining:
    """The DP-SGD state of one fit: noise level, accountant, and the optimizer that clips and adds noise.

    Args:
        epsilon: the privacy budget to spend by the end of `epochs`.
        delta: its delta (already checked against the members).
        max_grad_norm: the norm each image's gradient is clipped to.
        accountant: `rdp` (Renyi DP, the usual, an upper bound) or `prv` (tighter, numerical).
        members: the number of training images.
        batch_size: the expected batch size.
        epochs: the epochs the budget is spread over.
    """

    def __init__(
        self,
        epsilon: float,
        delta: float,
        max_grad_norm: float,
        accountant: str,
        members: int,
        batch_size: int,
        epochs: int,
    ) -> None:
        require_opacus()
        from opacus.accountants.registry import create_accountant
        from opacus.accountants.utils import get_noise_multiplier

        self.epsilon, self.delta, self.max_grad_norm, self.kind = epsilon, delta, max_grad_norm, accountant
        self.epochs = epochs
        self.sample_rate = sample_rate(members, batch_size)
        self.expected_batch_size = max(1, round(members * self.sample_rate))
        with warnings.catch_warnings():  # the PRV accountant warns about its own numerical tolerances
            warnings.simplefilter("ignore")
            try:
                self.noise_multiplier = get_noise_multiplier(
                    target_epsilon=epsilon,
                    target_delta=delta,
                    sample_rate=self.sample_rate,
                    epochs=epochs,
                    accountant=accountant,
                )
            except ValueError as err:  # opacus: "The privacy budget is too low." (no noise is enough)
                raise MintError(
                    f"dp_epsilon = {epsilon:g} (delta {delta:.3g}, {epochs} epochs, sample rate "
                    f"{self.sample_rate:.3g}) is out of the accountant's reach ({err}): no amount of noise "
                    "gives it. Ask for a larger epsilon (0.1 to 10 is usual) or fewer epochs"
                ) from err
        self.accountant = create_accountant(accountant)
        self.grad_sample = None

    @staticmethod
    def check_trainer(trainer) -> None:
        """Refuse trainer settings under which the accountant's guarantee would not hold."""
        if trainer.max_epochs is None or trainer.max_epochs < 1:
            raise MintError(
                "DP-SGD spends its budget over a number of epochs fixed in advance: set trainer.max_epochs"
            )
        if trainer.world_size > 1:
            raise MintError(
                f"DP-SGD runs on one device here ({trainer.world_size} were configured): the accountant "
                "assumes one Poisson-sampled stream of batches, which DDP's sampler does not give. "
                "Set trainer.devices=1 (and num_nodes=1)."
            )
        if trainer.accumulate_grad_batches != 1:
            raise MintError(
                "DP-SGD with trainer.accumulate_grad_batches > 1 would add the noise once per several "
                "batches while the accountant counts every batch: set it to 1 (raise data.batch_size "
                "instead)."
            )

    def wrap(self, net: nn.Module, optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
        """Per-image gradients on `net` (its keys unchanged) and an optimizer that clips and adds noise."""
        if isinstance(optimizer, torch.optim.LBFGS):
            raise MintError(
                "DP-SGD cannot use LBFGS: it evaluates the loss several times per step, and each "
                "evaluation would spend privacy the accountant does not count. Use Adam or SGD."
            )
        from opacus import GradSampleModule
        from opacus.optimizers import DPOptimizer

        # Opacus' hooks fire on outputs when the images need no gradient, as intended: no warning.
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        with warnings.catch_warnings():  # Opacus warns that its RNG is not cryptographically secure
            warnings.simplefilter("ignore")
            # Hooks on net's own layers: the forward pass through `net` records per-image gradients.
            self.grad_sample = GradSampleModule(net)
            dp_optimizer = DPOptimizer(
                optimizer,
                noise_multiplier=self.noise_multiplier,
                max_grad_norm=self.max_grad_norm,
                expected_batch_size=self.expected_batch_size,
            )
        dp_optimizer.attach_step_hook(self.accountant.get_optimizer_hook_fn(sample_rate=self.sample_rate))
        return dp_optimizer

    def check_loader(self, loader) -> None:
        """Refuse training batches that are not Poisson samples at the planned rate."""
        from opacus.utils.uniform_sampler import UniformWithReplacementSampler

        sampler = getattr(loader, "batch_sampler", None)
        if not isinstance(sampler, UniformWithReplacementSampler) or sampler.sample_rate != self.sample_rate:
            raise MintError(
                "DP-SGD needs Poisson-sampled training batches (its accountant assumes them), but the "
                f"training loader draws them with {type(sampler).__name__}. Use mint.data.TargetDataModule, "
                "or a data module whose train_dataloader honours `poisson_sampling`."
            )

    def spent(self) -> float:
        """The epsilon spent so far (at `delta`)."""
        if not self.accountant.history:
            return 0.0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return float(self.accountant.get_epsilon(delta=self.delta))

    def state(self) -> dict:
        """Plain values (loadable with `weights_only=True`): the budget, the noise and the accountant."""
        return {
            "epsilon_target": self.epsilon,
            "epsilon_spent": self.spent(),
            "delta": self.delta,
            "noise_multiplier": self.noise_multiplier,
            "max_grad_norm": self.max_grad_norm,
            "sample_rate": self.sample_rate,
            "accountant": self.kind,
            "epochs": self.epochs,
            "history": [list(h) for h in self.accountant.history],
        }

    def load(self, state: dict) -> None:
        """Continue the accountant of a resumed fit (its steps were already spent)."""
        planned = (state.get("epochs", self.epochs), state["sample_rate"], state["noise_multiplier"])
        if planned != (self.epochs, self.sample_rate, self.noise_multiplier):
            raise MintError(
                f"this DP-SGD fit was planned for {planned[0]} epochs at sampling rate {planned[1]:.4g} "
                f"(noise {planned[2]:.4g}); resuming it with {self.epochs} epochs at {self.sample_rate:.4g} "
                "would spend another budget than dp_epsilon. Resume with the same trainer.max_epochs and "
                "data.batch_size, or start a new fit."
            )
        self.accountant.history = [tuple(h) for h in state["history"]]
