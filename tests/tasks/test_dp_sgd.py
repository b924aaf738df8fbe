"""DP-SGD targets (Opacus): what they claim, that audits never prove more, and the settings refused."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from mint.cli import main
from mint.data.images import to_tensor
from mint.errors import MintError
from mint.evaluation.privacy_bound import audit_epsilon
from mint.models import LOGITS, Target
from mint.models.dp_compatible import make_dp_compatible
from mint.records import load_target_checkpoint
from mint.tasks.callbacks import last_checkpoint
from mint.tasks.dp_sgd import PrivateTraining, resolve_delta, sample_rate
from tests.conftest import fit_args

CLAIM = 0.5
SMALL = ["--model.width=0.25", "--data.batch_size=50", "--data.num_workers=0"]


@pytest.fixture(scope="module")
def dp_target(tmp_path_factory):
    """A PaperCNN trained with DP-SGD to epsilon 0.5 on the 1,000 members of the bundled sample."""
    tmp = tmp_path_factory.mktemp("dp_target")
    cli = main(fit_args(tmp, *SMALL, "--trainer.max_epochs=2", f"--model.init_args.dp_epsilon={CLAIM}"))
    return cli, last_checkpoint(cli.trainer)


def test_a_dp_target_spends_its_budget_with_poisson_batches_and_group_norm(dp_target):
    cli, ckpt = dp_target
    members = len(cli.datamodule.members)
    claim = torch.load(ckpt, weights_only=True)["dp_sgd"]
    # Spent by the end of the planned epochs: the budget, to the noise search's tolerance, not more.
    assert CLAIM * 0.95 <= claim["epsilon_spent"] <= CLAIM * 1.01
    assert claim["delta"] == pytest.approx(members**-1.1)
    assert claim["sample_rate"] == sample_rate(members, 50) == 0.05
    steps = sum(h[2] for h in claim["history"])
    assert steps == 2 * 20  # every batch of both epochs was counted
    assert float(cli.trainer.callback_metrics["train/epsilon"]) == pytest.approx(claim["epsilon_spent"])
    kinds = {type(m) for m in cli.model.net.modules()}
    assert nn.GroupNorm in kinds and not any(issubclass(k, nn.modules.batchnorm._BatchNorm) for k in kinds)
    sizes = {len(b[0]) for b in cli.datamodule.train_dataloader()}
    assert len(sizes) > 1  # Poisson batches vary in size; fixed batches would break the accounting
    # An auditor reads the claim and the same GroupNorm network back from the checkpoint.
    assert load_target_checkpoint(ckpt).extra["dp_sgd"]["epsilon_spent"] == claim["epsilon_spent"]
    target = Target.load(ckpt, ["layer7"])
    images = to_tensor(torch.from_numpy(cli.datamodule.data.train.images[:8]))
    with torch.no_grad():
        expected = cli.model.eval()(images)
        assert torch.allclose(target(images, gradients=False)[LOGITS], expected, atol=1e-5)


def test_no_attack_proves_more_than_the_claimed_epsilon(dp_target):
    """A violation would be a bug in the training or in the bound; a point estimate would 'violate'."""
    cli, ckpt = dp_target
    dm, target = cli.datamodule, Target.load(ckpt, ["layer7"])
    claim = torch.load(ckpt, weights_only=True)["dp_sgd"]
    train = dm.data.train
    ids = np.r_[dm.data.split.members, dm.data.split.nonmembers]
    is_member = np.r_[np.ones(len(dm.data.split.members)), np.zeros(len(dm.data.split.nonmembers))]
    with torch.no_grad():
        logits = target(to_tensor(torch.from_numpy(train.images[ids])), gradients=False)[LOGITS].double()
    labels = torch.as_tensor(train.labels[ids]).long()
    log_p = logits.log_softmax(-1)
    loss_score = log_p.gather(1, labels[:, None])[:, 0].numpy()
    others = log_p.scatter(1, labels[:, None], -torch.inf).max(1).values.numpy()
    for scores in (loss_score, loss_score - others):
        bound = audit_epsilon(scores, is_member, claim["delta"])
        assert 0 <= bound["epsilon_lower_bound"] <= claim["epsilon_spent"]
    # The naive estimate, max over thresholds of ln(TPR / FPR) from counts, exceeds the claim here:
    # without the binomial intervals the audit would accuse a correct DP-SGD of cheating.
    order = np.argsort(-loss_score)
    tp, fp = np.cumsum(is_member[order]), np.cumsum(1 - is_member[order])
    ok = fp > 0
    naive = np.log((tp[ok] / is_member.sum()) / (fp[ok] / (1 - is_member).sum())).max()
    assert naive > claim["epsilon_spent"]


def test_a_detector_test_reports_the_claim_and_how_many_images_would_test_it(dp_target, tmp_path):
    from tests.conftest import detector_args

    _, ckpt = dp_target
    small = ["--data.val_size=20", "--data.test_size=60", "--data.calibration_size=0", "--data.batch_size=20"]
    cli = main(["fit", *detector_args(tmp_path, ckpt, "--trainer.max_epochs=1", *small)])
    cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path="best", verbose=False)

    privacy = json.loads((tmp_path / "mint_layer7" / "version_0" / "test_results.json").read_text())[
        "privacy"
    ]
    assert privacy["claimed_epsilon"] == pytest.approx(CLAIM, rel=0.05) and privacy["delta"] < 1 / 1000
    assert set(privacy["epsilon_lower_bound"]) >= {"mint", "loss"}
    assert all(0 <= v <= privacy["largest_provable"] for v in privacy["epsilon_lower_bound"].values())
    # 30 + 30 bounded images prove at most ln(about 30 / 3): above the 0.5 claimed, so no note here.
    assert privacy["largest_provable"] > CLAIM and "note" not in privacy


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--model.init_args.dp_epsilon=0"], ["dp_epsilon", "> 0"]),
        (["--model.init_args.dp_epsilon=8", "--model.init_args.dp_delta=0.01"], ["dp_delta", r"1 / 1000"]),
        (["--model.init_args.dp_epsilon=8", "--model.init_args.dp_max_grad_norm=0"], ["clipping"]),
        (["--model.init_args.dp_epsilon=8", "--trainer.accumulate_grad_batches=2"], ["accumulate"]),
        (["--model.init_args.dp_epsilon=8", "--model.optimizer=torch.optim.LBFGS"], ["LBFGS", "several"]),
        (["--model.init_args.dp_epsilon=8", "--model.init_args.dp_accountant=gdp"], ["rdp", "prv"]),
        (["--model.init_args.early_stopping=0"], ["early_stopping", ">= 1"]),
    ],
)
def test_settings_that_break_the_guarantee_are_refused(refused, tmp_path, extra, words):
    refused(fit_args(tmp_path, *SMALL, "--trainer.max_epochs=1", *extra), *words)


def test_several_devices_are_refused():
    trainer = SimpleNamespace(max_epochs=3, world_size=2, accumulate_grad_batches=1)
    with pytest.raises(MintError, match="one device"):
        PrivateTraining.check_trainer(trainer)
    with pytest.raises(MintError, match="max_epochs"):
        PrivateTraining.check_trainer(SimpleNamespace(max_epochs=-1, world_size=1, accumulate_grad_batches=1))


class Scaled(nn.Module):
    """Trainable weights beside a buffer (statistics DP-SGD would not privatize)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(4))
        self.register_buffer("running", torch.zeros(4))

    def forward(self, x):
        return x * self.weight + self.running


def test_a_layer_dp_sgd_cannot_train_is_named():
    net = nn.Sequential(nn.Linear(4, 4), Scaled())
    with pytest.raises(MintError, match=r"'1' \(Scaled\).*buffers"):
        make_dp_compatible(net)
    fixed = make_dp_compatible(nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(inplace=True)))
    assert isinstance(fixed[1], nn.GroupNorm) and not fixed[2].inplace


def test_delta_defaults_below_one_over_n_and_the_accountant_resumes():
    assert resolve_delta(None, 1000) == pytest.approx(1000**-1.1) and resolve_delta(1e-4, 1000) == 1e-4
    private = PrivateTraining(4.0, 1e-4, 1.0, "rdp", members=1000, batch_size=100, epochs=5)
    private.accountant.history = [(private.noise_multiplier, private.sample_rate, 50)]
    again = PrivateTraining(4.0, 1e-4, 1.0, "rdp", members=1000, batch_size=100, epochs=5)
    again.load(private.state())
    assert again.spent() == pytest.approx(private.spent()) and 3.9 < again.spent() <= 4.0


def test_early_stopping_stops_when_validation_accuracy_stalls(tmp_path):
    # lr 0: only BatchNorm's statistics move, so validation accuracy soon stops improving.
    stalled = ["--model.optimizer.init_args.lr=0", "--model.init_args.early_stopping=1"]
    cli = main(fit_args(tmp_path, *SMALL, "--trainer.max_epochs=8", *stalled))
    assert cli.trainer.current_epoch < 8 and cli.trainer.should_stop


def test_a_resumed_dp_fit_continues_the_count_and_refuses_another_plan(tmp_path):
    base = [*SMALL, "--model.init_args.dp_epsilon=2", "--trainer.logger.init_args.version=v"]
    main(fit_args(tmp_path, *base, "--trainer.max_epochs=1"))
    ckpt = tmp_path / "target_cifar10" / "v" / "checkpoints" / "last.ckpt"
    with pytest.raises(MintError, match="planned for 1 epochs"):  # more epochs: more than dp_epsilon spent
        main(fit_args(tmp_path, *base, "--trainer.max_epochs=2", f"--ckpt_path={ckpt}"))
    state = torch.load(ckpt, weights_only=True)["dp_sgd"]
    again = PrivateTraining(2.0, state["delta"], 1.0, "rdp", members=1000, batch_size=50, epochs=1)
    again.load(state)  # the same plan: the count goes on where the checkpoint left it
    assert sum(h[2] for h in again.accountant.history) == 20 and again.spent() == state["epsilon_spent"]
