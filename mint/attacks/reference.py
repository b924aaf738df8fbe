"""Attacks calibrated with reference models: LiRA, RMIA and the reference-calibrated loss.

Every function takes the target's outputs and K reference models' outputs on the same N images,
with `kept` (K, N): which references trained on which image. All arithmetic is float64. Scores are
higher for more member-like images.

- LiRA (Carlini et al., S&P 2022). Statistic: the logit-scaled true-class confidence
  phi = log p_y - log(1 - p_y) = z_y - logsumexp_{j != y} z_j, computed from the logits (no float32
  probabilities, no 1e-45 floor: the reference code's phi is capped near +-104, this one is not).
  Per image, the IN and OUT references' phi give a Gaussian each: mean = median, std over references
  (as the reference code). Online: log N(phi; IN) - log N(phi; OUT). Offline: one-sided, as the
  paper's Eq. 4 (Phi((phi - mu_out) / sd_out)), scored as -log P(Z > z), which orders images the same
  way without rounding the most member-like ones to one tied value (the reference code uses the
  two-sided -log N(phi; OUT), which also calls an unusually *low* confidence a member). Fixed variance: one
  std per side, pooled over all images from each image's deviations from its own median. Test-time
  augmentations (a last axis A) get a Gaussian each; their log-likelihood ratios are averaged.
- RMIA (Zarifzadeh et al., ICML 2024). ratio(x) = p_y(x | target) / Pr(x), with Pr(x) the mean of the
  references' p_y(x): online over all references, offline over the OUT ones, corrected by the
  paper's linear approximation Pr(x) = (1 + a) / 2 * Pr_OUT(x) + (1 - a) / 2. Population images z
  (non-members outside the audited set) get the same treatment; score(x) = the share of z with
  ratio(x) / ratio(z) > gamma. `fit_offline_a` picks `a` as the paper's tool does: one reference
  plays the target, the others attack it, the best AUROC over a grid wins.
- Calibrated loss (Watson et al., ICLR 2022): the OUT references' mean loss minus the target's loss.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mint.errors import MintError
from mint.evaluation.metrics import auroc
from mint.signals import logit_confidence, true_class_probability

LOG_2PI = 1.8378770664093453
MIN_STD = 1e-30  # as the reference code: a std of 0 (identical references) stays finite


def _masked(values: Tensor, mask: Tensor) -> Tensor:
    """Reference statistics (K, N, A) with the entries outside `mask` (K, N) set to NaN."""
    return torch.where(mask[..., None], values, torch.full_like(values, float("nan")))


def _gaussian(values: Tensor, mask: Tensor, fixed: bool) -> tuple[Tensor, Tensor]:
    """Per-image median (N, A) and std (N, A) of the references in `mask`.

    The pooled std (all of it if `fixed`, else for images with fewer than 2 references on this
    side) is the spread of images around their own medians, over the images with at least 2; when
    none has 2, the spread of all values (as the reference code's global std).
    """
    x = _masked(values, mask)
    mu = x.nanquantile(0.5, dim=0)  # the mean of the two middle values for even counts, as np.median
    several = mask.sum(0) >= 2  # (N,)
    if several.any():
        pooled = ((x - mu)[:, several] ** 2).nanmean().sqrt()
    else:
        pooled = ((x - x.nanmean()) ** 2).nanmean().sqrt()
    own = ((x - x.nanmean(dim=0)) ** 2).nanmean(dim=0).sqrt()  # ddof = 0, as the reference code
    sd = torch.where(several[:, None] & (not fixed), own, pooled)
    return mu, sd + MIN_STD


def _log_normal(x: Tensor, mu: Tensor, sd: Tensor) -> Tensor:
    return -0.5 * ((x - mu) / sd) ** 2 - sd.log() - 0.5 * LOG_2PI


def _with_aug(t: Tensor, refs: Tensor) -> tuple[Tensor, Tensor]:
    """Add the augmentation axis when absent: target (N,) -> (N, 1), references (K, N) -> (K, N, 1)."""
    return (t[:, None], refs[..., None]) if t.dim() == 1 else (t, refs)


def lira(
    target: Tensor, refs: Tensor, kept: Tensor, online: bool = True, fixed_variance: bool = False
) -> tuple[Tensor, list[str]]:
    """LiRA scores (N,) and notes, from statistics `target` (N[, A]) and `refs` (K, N[, A]).

    Args:
        target: the target's `logit_confidence` of each image (and augmentation).
        refs: the references' `logit_confidence`.
        kept: (K, N) bool, True where reference k trained on image n.
        online: use IN and OUT references; offline uses only OUT ones (and must have them).
        fixed_variance: one std per side for all images (the paper's choice for few references): the
            spread of each reference around its own image's median, pooled over images (`_gaussian`),
            not the reference code's global std of all values, which adds the spread between images.
    """
    target, refs = _with_aug(target.double(), refs.double())
    kept = kept.bool()
    out_count, in_count = (~kept).sum(0), kept.sum(0)
    notes = []
    if int(out_count.min()) == 0:
        raise MintError(
            f"{int((out_count == 0).sum())} images are in the training data of every reference model, "
            "so no OUT reference describes them: train more references (or draw them so that every "
            "audited image is left out of some)"
        )
    few = (out_count < 2) if not online else (torch.minimum(in_count, out_count) < 2)
    if online and int(in_count.min()) == 0:
        raise MintError(
            f"{int((in_count == 0).sum())} images are in no reference model's training data: the online "
            "attack needs IN references for each image; use the offline attack or train more references"
        )
    if few.any() and not fixed_variance:
        notes.append(
            f"{int(few.sum())} images have fewer than 2 references on a side: the pooled variance is "
            "used for them"
        )
    mu_out, sd_out = _gaussian(refs, ~kept, fixed_variance)
    if not online:
        # -log P(Z > z): ordered as the paper's Phi(z), but it never rounds to one value (0) for the
        # most member-like images, which Phi and log Phi do above z = 8 and 37: ties erase low FPRs.
        return -torch.special.log_ndtr(-(target - mu_out) / sd_out).mean(-1), notes
    mu_in, sd_in = _gaussian(refs, kept, fixed_variance)
    ratio = _log_normal(target, mu_in, sd_in) - _log_normal(target, mu_out, sd_out)
    return ratio.mean(-1), notes


def _reference_probability(refs: Tensor, kept: Tensor, a: float | None) -> Tensor:
    """Pr(x) (N,): the mean over all references (online, a None) or the corrected OUT mean (offline)."""
    if a is None:
        return refs.mean(0)
    out = (~kept).double()
    mean_out = (refs * out).sum(0) / out.sum(0)
    return (1 + a) / 2 * mean_out + (1 - a) / 2


def rmia(
    target_x: Tensor,
    refs_x: Tensor,
    kept_x: Tensor,
    target_z: Tensor,
    refs_z: Tensor,
    kept_z: Tensor,
    a: float | None = None,
    gamma: float = 1.0,
) -> Tensor:
    """RMIA scores (N,): the share of population images z that x dominates by more than `gamma`.

    Args:
        target_x: the target's `true_class_probability` of the audited images (N,).
        refs_x: the references' (K, N).
        kept_x: (K, N) bool, True where reference k trained on image n.
        target_z: the target's probabilities of the population images z (M,).
        refs_z: the references' (K, M).
        kept_z: (K, M) bool for the population images.
        a: None for the online attack; the offline correction's `a` in [0, 1] otherwise.
        gamma: the likelihood-ratio threshold of the pairwise test (>= 1).
    """
    if a is not None and not 0 <= a <= 1:
        raise MintError(f"RMIA's offline parameter a must be in [0, 1], got {a}")
    if a is not None and int((~kept_x.bool()).sum(0).min()) == 0:
        raise MintError("offline RMIA needs, for every audited image, references that did not train on it")
    if a is not None:  # offline: population images that every reference trained on have no OUT mean
        usable = (~kept_z.bool()).any(0)
        target_z, refs_z, kept_z = target_z[usable], refs_z[:, usable], kept_z[:, usable]
    ratio_x = target_x.double() / _reference_probability(refs_x.double(), kept_x.bool(), a)
    ratio_z = target_z.double() / _reference_probability(refs_z.double(), kept_z.bool(), a)
    # ratio_x / ratio_z > gamma  <=>  ratio_z < ratio_x / gamma (ratios are positive): count by sorting
    below = torch.searchsorted(
        ratio_z.sort().values.contiguous(), (ratio_x / gamma).contiguous(), side="left"
    )
    return below.double() / len(ratio_z)


def fit_offline_a(
    refs_x: Tensor, kept_x: Tensor, refs_z: Tensor, kept_z: Tensor, grid: int = 11, gamma: float = 1.0
) -> float:
    """RMIA's offline `a`: reference 0 plays the target, the others attack it offline; best AUROC wins.

    Needs at least 2 references; images are scored against reference 0's own membership (`kept_x[0]`).
    """
    if len(refs_x) < 2:
        raise MintError("fitting RMIA's offline a needs at least 2 reference models (one plays the target)")
    others, members = slice(1, None), kept_x[0].bool()
    usable = (~kept_x[others].bool()).any(0)  # images with an OUT reference among the others
    best = (-1.0, 0.0)
    for a in torch.linspace(0, 1, grid).tolist():
        scores = rmia(refs_x[0][usable], refs_x[others][:, usable], kept_x[others][:, usable],
                      refs_z[0], refs_z[others], kept_z[others], a, gamma)  # fmt: skip
        best = max(best, (float(auroc(scores, members[usable])), a))
    return best[1]


def calibrated_loss(target_logits: Tensor, ref_logits: Tensor, kept: Tensor, labels: Tensor) -> Tensor:
    """Mean loss of the OUT references minus the target's loss (N,), from logits (N, C) and (K, N, C)."""
    target = -torch.log_softmax(target_logits.double(), -1).gather(-1, labels.long()[:, None]).squeeze(-1)
    refs = (
        -torch.log_softmax(ref_logits.double(), -1)
        .gather(-1, labels.long()[None, :, None].expand(len(ref_logits), -1, 1))
        .squeeze(-1)
    )  # (K, N)
    out = (~kept.bool()).double()
    if int(out.sum(0).min()) == 0:
        raise MintError("the calibrated loss needs, for every image, a reference that did not train on it")
    return (refs * out).sum(0) / out.sum(0) - target


def _offline_a(
    rmia_a: float | None, count: int, p_r: Tensor, kept: Tensor, offline: Tensor, zs: slice, notes: list[str]
) -> float:
    """Offline RMIA's `a`: given, fitted on the references (one playing the target), or the paper's 0.3."""
    if rmia_a is None and count > 1 and len(offline) > 0:
        return fit_offline_a(p_r[:, offline], kept[:, offline], p_r[:, zs], kept[:, zs])
    if rmia_a is not None:
        notes.append(f"RMIA's offline a given: {rmia_a}")
        return rmia_a
    notes.append(
        "RMIA's offline a set to 0.3 (the paper's CIFAR-10 value), not fitted: it needs 2 references"
    )
    return 0.3


def attack_scores(
    target_all: Tensor,
    ref_all: Tensor,
    kept: Tensor,
    y: Tensor,
    n: int,
    online_form: bool,
    rmia_a: float | None,
    notes: list[str],
) -> tuple[dict[str, Tensor], float]:
    """Every reference attack's scores (n,) of the first `n` images (the rest: RMIA's population), and `a`.

    From the float64 logits (N, queries, C) of the target and (K, N, queries, C) of the references,
    `kept` (K, N) (which reference trained on which image) and the labels `y` (N,); LiRA's fixed
    variance in its online form when `online_form`; offline RMIA's `a` as given, or fitted (None).
    What the attacks say about themselves is appended to `notes`.
    """
    target_logits, ref_logits = target_all[:, 0], ref_all[:, :, 0]  # the images themselves
    y_q = y[:, None].expand(-1, target_all.shape[1])  # one label per query
    phi_t, phi_r = logit_confidence(target_all, y_q), logit_confidence(ref_all, y_q)  # (N, Q), (K, N, Q)
    p_t, p_r = true_class_probability(target_logits, y), true_class_probability(ref_logits, y)
    zs = slice(n, None)
    has_in, has_out = kept[:, :n].any(0), (~kept[:, :n]).any(0)
    # Online attacks score the images with IN and OUT references, offline ones those with OUT ones;
    # the others stay NaN (an online set of one reference has half its images IN it, none OUT).
    rows = {
        "online": torch.nonzero(has_in & has_out).squeeze(1),
        "offline": torch.nonzero(has_out).squeeze(1),
    }

    def on(kind: str, score) -> Tensor:
        r = rows[kind]
        out = torch.full((n,), float("nan"), dtype=torch.float64)
        if len(r):
            out[r] = score(r)
        return out

    def lira_on(r, online, fixed=False):
        values, note = lira(phi_t[r], phi_r[:, r], kept[:, r], online, fixed)
        notes.extend(text for text in note if text not in notes)
        return values

    z_args = (p_t[zs], p_r[:, zs], kept[:, zs])
    a = _offline_a(rmia_a, len(kept), p_r, kept, rows["offline"], zs, notes)
    scores = {
        "lira_online": on("online", lambda r: lira_on(r, True)),
        "lira_offline": on("offline", lambda r: lira_on(r, False)),
        "lira_fixed_variance": on(
            "online" if online_form else "offline", lambda r: lira_on(r, online_form, True)
        ),
        "rmia_online": on("online", lambda r: rmia(p_t[r], p_r[:, r], kept[:, r], *z_args)),
        "rmia_offline": on("offline", lambda r: rmia(p_t[r], p_r[:, r], kept[:, r], *z_args, a=a)),
        "calibrated_loss": on(
            "offline", lambda r: calibrated_loss(target_logits[r], ref_logits[:, r], kept[:, r], y[r])
        ),
    }
    return scores, a
