"""The lower bound on epsilon that an attack proves: exact binomial intervals on its TPR and FPR.

If a training algorithm is (epsilon, delta)-differentially private, every membership test on one of
its models satisfies TPR <= e^epsilon * FPR + delta and, from the other side, TNR <= e^epsilon * FNR
+ delta (Kairouz et al. 2015; used for auditing by Jagielski et al. 2020, Nasr et al. 2021). An attack
that reaches TPR and FPR at some threshold therefore proves

    epsilon >= ln((TPR - delta) / FPR)    (and ln((TNR - delta) / FNR)),

but only with the true rates, which a finite test set estimates. The bound here takes, at 95%
confidence, one-sided Clopper-Pearson intervals: the TPR's lower end and the FPR's upper end (exact
binomial tails, never a normal approximation), so the result is a proof at that confidence, not a
point estimate. The threshold must not be chosen on the same images: `fit_threshold` picks it on
another set (the attack's training or validation images), `epsilon_lower_bound` then bounds on the
test set at that one threshold. Even a perfect attack proves at most about ln(n / 3) with n images
a side (`largest_provable`); `images_needed` says how many an audit of a claimed epsilon needs.
"""

from __future__ import annotations

import numpy as np
import torch

from mint.errors import MintError

TINY = 1e-300
CANDIDATE_TAIL = 64  # thresholds flagging at most this many non-members (or missing members) are all tried


def _lgamma(v: np.ndarray) -> np.ndarray:
    return torch.lgamma(torch.from_numpy(np.ascontiguousarray(v, dtype=np.float64))).numpy()


def _betainc(a: np.ndarray, b: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Regularized incomplete beta I_x(a, b) (a, b > 0), elementwise, by its continued fraction.

    Lentz's method on the fraction of Numerical Recipes 6.4, on the side x < (a + 1) / (a + b + 2)
    where it converges fast (the other side by I_x(a, b) = 1 - I_{1-x}(b, a)).
    """
    a, b, x = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (a, b, x)))
    flip = x > (a + 1) / (a + b + 2)
    a, b, x = np.where(flip, b, a), np.where(flip, a, b), np.where(flip, 1 - x, x)
    with np.errstate(divide="ignore"):
        log_front = (
            _lgamma(a + b) - _lgamma(a) - _lgamma(b)
            + a * np.log(np.maximum(x, TINY)) + b * np.log1p(-np.minimum(x, 1 - 1e-16))
        )  # fmt: skip
    c, d = np.ones_like(x), 1 - (a + b) * x / (a + 1)
    d = 1 / np.where(np.abs(d) < TINY, TINY, d)
    f = d.copy()
    for m in range(1, 400):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1 + numerator * d
            d = 1 / np.where(np.abs(d) < TINY, TINY, d)
            c = 1 + numerator / c
            c = np.where(np.abs(c) < TINY, TINY, c)
            f *= c * d
        if np.all(np.abs(c * d - 1) < 1e-15):
            break
    value = np.where(x <= 0, 0.0, np.exp(log_front) * f / a)
    return np.where(flip, 1 - value, value)


def clopper_pearson(k, n, confidence: float = 0.95, side: str = "lower") -> np.ndarray:
    """One-sided exact bound on a rate from k successes of n: its `lower` or `upper` end.

    Lower: the p at which P(Binomial(n, p) >= k) = 1 - confidence (0 when k = 0); upper: the p at
    which P(Binomial(n, p) <= k) = 1 - confidence (1 when k = n). Bisection on the binomial tail,
    written as a regularized incomplete beta; k may be an array. Equal to scipy's beta quantiles
    to 1e-12 (a test checks it), without scipy at run time.
    """
    k = np.asarray(k, dtype=np.float64)
    alpha = 1 - confidence
    lo, hi = np.zeros_like(k), np.ones_like(k)
    for _ in range(48):  # to 2^-48: far below what the log of a ratio of rates can notice
        p = (lo + hi) / 2
        if side == "lower":  # P(X >= k) = I_p(k, n - k + 1) grows with p
            too_high = _betainc(np.maximum(k, 1), n - k + 1, p) > alpha
        else:  # P(X <= k) = 1 - I_p(k + 1, n - k) falls with p
            too_high = 1 - _betainc(k + 1, np.maximum(n - k, 1), p) < alpha
        lo, hi = np.where(too_high, lo, p), np.where(too_high, p, hi)
    bound = np.where(k <= 0, 0.0, lo) if side == "lower" else np.where(k >= n, 1.0, hi)
    return bound.reshape(k.shape)


def _counts(scores: np.ndarray, members: np.ndarray, threshold: float) -> tuple[int, int, int, int]:
    flagged = scores >= threshold
    return (int((flagged & members).sum()), int(members.sum()), int((flagged & ~members).sum()),
            int((~members).sum()))  # fmt: skip


def epsilon_from_counts(tp, n_pos: int, fp, n_neg: int, delta: float = 0.0, confidence: float = 0.95):
    """The epsilon proven by tp of n_pos members and fp of n_neg non-members flagged (arrays allowed).

    The larger of ln((TPR_low - delta) / FPR_high) and ln((TNR_low - delta) / FNR_high), at least 0.
    """
    tp, fp = np.asarray(tp, np.int64), np.asarray(fp, np.int64)

    def table(k: np.ndarray, n: int, side: str) -> np.ndarray:  # one bisection per distinct count
        distinct, where = np.unique(k, return_inverse=True)
        return clopper_pearson(distinct, n, confidence, side)[where].reshape(k.shape)

    tpr_lo, fpr_hi = table(tp, n_pos, "lower"), table(fp, n_neg, "upper")
    tnr_lo, fnr_hi = table(n_neg - fp, n_neg, "lower"), table(n_pos - tp, n_pos, "upper")
    with np.errstate(divide="ignore", invalid="ignore"):
        one = np.log(np.maximum(tpr_lo - delta, 0) / fpr_hi)
        other = np.log(np.maximum(tnr_lo - delta, 0) / fnr_hi)
    return np.maximum(np.nan_to_num(np.maximum(one, other), nan=-np.inf, neginf=-np.inf), 0.0)


def fit_threshold(scores, members, delta: float = 0.0, confidence: float = 0.95) -> float:
    """The threshold (score >= it: member) whose bound is largest on these (fitting) images."""
    scores, members = np.asarray(scores, np.float64), np.asarray(members).astype(bool)
    order = np.argsort(-scores, kind="stable")
    s, m = scores[order], members[order]
    last = np.r_[s[1:] != s[:-1], True]  # the last of each run of tied scores: a real threshold
    tp, fp = np.cumsum(m)[last], np.cumsum(~m)[last]
    # The bound peaks where few non-members are flagged (or few members are not): every such
    # threshold is a candidate, the rest only on a grid of 256 ranks (bisections are the cost).
    fn, grid = m.sum() - tp, np.zeros(len(tp), bool)
    grid[np.linspace(0, len(tp) - 1, min(256, len(tp))).astype(int)] = True
    keep = (fp <= CANDIDATE_TAIL) | (fn <= CANDIDATE_TAIL) | grid
    tp, fp, s = tp[keep], fp[keep], s[last][keep]
    bounds = epsilon_from_counts(tp, m.sum(), fp, (~m).sum(), delta, confidence)
    return float(s[int(np.argmax(bounds))])


def epsilon_lower_bound(
    scores, members, threshold: float, delta: float = 0.0, confidence: float = 0.95
) -> dict:
    """The epsilon these images prove at `threshold` (chosen on other images), with its counts.

    Args:
        scores: attack scores (higher = more member-like), one per image.
        members: 1 for members, 0 for non-members.
        threshold: flag images scoring at least this (from `fit_threshold` on other images).
        delta: the delta of the claimed guarantee (often 1 / number of training images).
        confidence: of the one-sided Clopper-Pearson intervals.
    """
    scores, members = np.asarray(scores, np.float64), np.asarray(members).astype(bool)
    if not 0 <= delta < 1 or not 0 < confidence < 1:
        raise MintError(
            f"need 0 <= delta < 1 and 0 < confidence < 1; got delta={delta}, confidence={confidence}"
        )
    tp, n_pos, fp, n_neg = _counts(scores, members, threshold)
    if min(n_pos, n_neg) == 0:
        raise MintError("the empirical epsilon needs both members and non-members among the images")
    return {
        "epsilon_lower_bound": float(epsilon_from_counts(tp, n_pos, fp, n_neg, delta, confidence)),
        "largest_provable": largest_provable(n_pos, n_neg, delta, confidence),
        "threshold": threshold, "delta": delta, "confidence": confidence,
        "true_positives": tp, "members": n_pos, "false_positives": fp, "nonmembers": n_neg,
    }  # fmt: skip


def largest_provable(n_pos: int, n_neg: int, delta: float = 0.0, confidence: float = 0.95) -> float:
    """The bound of a perfect attack on n_pos members and n_neg non-members (every one right)."""
    return float(epsilon_from_counts(n_pos, n_pos, 0, n_neg, delta, confidence))


def images_needed(epsilon: float, delta: float = 0.0, confidence: float = 0.95) -> int:
    """Members (and as many non-members) a perfect attack needs to prove `epsilon` at all."""
    if epsilon <= 0:
        raise MintError(f"epsilon must be positive, not {epsilon}")
    n = 1
    while largest_provable(n, n, delta, confidence) < epsilon:
        if n > 1 << 40:
            raise MintError(f"no number of images proves epsilon = {epsilon} with delta = {delta}")
        n *= 2
    lo, hi = n // 2, n  # the smallest n in (lo, hi] that proves it
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if largest_provable(mid, mid, delta, confidence) >= epsilon else (mid, hi)
    return hi


def audit_epsilon(scores, members, delta: float, seed: int = 0, confidence: float = 0.95) -> dict:
    """The epsilon one attack's scores prove: threshold fitted on half of the images, bound on the rest.

    The halves are a seeded split with members and non-members halved alike, so no image both
    chooses the threshold and counts in the bound.

    Args:
        scores: attack scores (higher = more member-like), one per image.
        members: 1 for members, 0 for non-members.
        delta: the delta of the guarantee tested.
        seed: of the split into halves.
        confidence: of the one-sided Clopper-Pearson intervals.
    """
    scores, members = np.asarray(scores, np.float64), np.asarray(members).astype(bool)
    rng = np.random.default_rng(seed)
    fit = np.zeros(len(scores), bool)
    for side in (members, ~members):
        where = np.flatnonzero(side)
        fit[rng.permutation(where)[: len(where) // 2]] = True
    if min(members[~fit].sum(), (~members[~fit]).sum(), members[fit].sum(), (~members[fit]).sum()) == 0:
        raise MintError("the empirical epsilon needs at least 2 members and 2 non-members")
    threshold = fit_threshold(scores[fit], members[fit], delta, confidence)
    return epsilon_lower_bound(scores[~fit], members[~fit], threshold, delta, confidence)
