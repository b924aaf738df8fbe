"""Reference-model attacks: LiRA and RMIA against known truths, and the reference keep masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mint.attacks.reference import (
    calibrated_loss,
    fit_offline_a,
    lira,
    rmia,
)
from mint.data.reference_masks import reference_kept
from mint.errors import MintError
from mint.evaluation.metrics import auroc, tpr_at_fpr
from mint.signals import logit_confidence, true_class_probability


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Rank correlation (no ties in continuous scores)."""
    ra, rb = (x.argsort().argsort().double() for x in (a, b))
    return float(torch.corrcoef(torch.stack([ra, rb]))[0, 1])


def gaussian_world(n=4000, k=64, seed=0):
    """Per-image Gaussians of the statistic: OUT ~ N(mu, s), IN ~ N(mu + shift, s); the truth is known."""
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(n, generator=g, dtype=torch.float64) * 2
    shift = torch.rand(n, generator=g, dtype=torch.float64) * 3  # some images leak much, some not at all
    s = 0.5 + torch.rand(n, generator=g, dtype=torch.float64)
    kept = torch.from_numpy(reference_kept(n, k, n // 2, seed))
    refs = mu + shift * kept + s * torch.randn(k, n, generator=g, dtype=torch.float64)
    member = torch.rand(n, generator=g) < 0.5
    target = mu + shift * member + s * torch.randn(n, generator=g, dtype=torch.float64)
    truth = (-0.5 * ((target - mu - shift) / s) ** 2) - (-0.5 * ((target - mu) / s) ** 2)
    return target, refs, kept, member, truth


def test_lira_orders_images_as_the_true_likelihood_ratio_and_beats_the_raw_statistic():
    target, refs, kept, member, truth = gaussian_world()
    online, notes = lira(target, refs, kept)
    assert notes == [] and spearman(online, truth) > 0.9
    fixed, _ = lira(target, refs, kept, fixed_variance=True)
    offline, _ = lira(target, refs, kept, online=False)
    for scores in (online, fixed, offline):  # the raw statistic (what a loss attack sees) is far weaker
        assert auroc(scores, member) > auroc(target, member) + 0.1
    assert tpr_at_fpr(online, member, 0.01) > 3 * tpr_at_fpr(target, member, 0.01)
    # Offline is one-sided: a higher statistic always means more member-like (never a low one).
    assert (lira(target + 1, refs, kept, online=False)[0] > offline).all()


def test_lira_says_when_it_cannot_run_and_falls_back_to_fixed_variance():
    target, refs, kept, _, _ = gaussian_world(n=200, k=2)
    scores, notes = lira(target, refs, kept)  # one IN and one OUT reference per image
    assert torch.isfinite(scores).all() and "200 images have fewer than 2" in notes[0]
    assert scores.std() < 100  # one reference a side: the spread of all values, not a std of 0
    with pytest.raises(MintError, match="in the training data of every reference"):
        lira(target, refs, torch.ones_like(kept))
    with pytest.raises(MintError, match="in no reference model's training data"):
        lira(target, refs, torch.zeros_like(kept))
    assert torch.isfinite(lira(target, refs, torch.zeros_like(kept), online=False)[0]).all()


def test_logit_confidence_is_exact_where_probabilities_round_to_one():
    logits = torch.tensor([[0.0, 0.0], [60.0, 0.0], [800.0, 0.0]], dtype=torch.float32)
    phi = logit_confidence(logits, torch.tensor([0, 0, 0]))
    torch.testing.assert_close(phi, torch.tensor([0.0, 60.0, 800.0], dtype=torch.float64))  # no cap at 104


def test_rmia_matches_a_hand_computed_example():
    """Online, 2 references: Pr(x) is their mean; score = share of z with ratio_x / ratio_z > gamma."""
    target_x = torch.tensor([0.75, 0.5, 0.2], dtype=torch.float64)
    refs_x = torch.tensor([[0.5, 0.5, 0.4], [0.25, 0.5, 0.2]], dtype=torch.float64)
    kept_x = torch.tensor([[True, False, True], [False, True, False]])
    target_z = torch.tensor([0.5, 0.3], dtype=torch.float64)
    refs_z = torch.tensor([[0.5, 0.6], [0.5, 0.6]], dtype=torch.float64)
    kept_z = torch.zeros(2, 2, dtype=torch.bool)
    # ratio_x = [0.75/0.375, 0.5/0.5, 0.2/0.3] = [2, 1, 0.667]; ratio_z = [1, 0.5]
    scores = rmia(target_x, refs_x, kept_x, target_z, refs_z, kept_z)
    torch.testing.assert_close(scores, torch.tensor([1.0, 0.5, 0.5], dtype=torch.float64))
    strict = rmia(target_x, refs_x, kept_x, target_z, refs_z, kept_z, gamma=2.0)  # 2/1 > 2 is false
    torch.testing.assert_close(strict, torch.tensor([0.5, 0.0, 0.0], dtype=torch.float64))
    # Offline with a = 1: Pr(x) is the OUT references' mean: [0.25, 0.5, 0.2] -> ratios [3, 1, 1]
    offline = rmia(target_x, refs_x, kept_x, target_z, refs_z, kept_z, a=1.0)
    torch.testing.assert_close(offline, torch.tensor([1.0, 0.5, 0.5], dtype=torch.float64))
    with pytest.raises(MintError, match="a must be in"):
        rmia(target_x, refs_x, kept_x, target_z, refs_z, kept_z, a=1.5)


def test_rmia_and_the_calibrated_loss_find_members_of_simulated_references():
    """Logits where training on an image raises its true-class logit by an image-specific amount."""
    g = torch.Generator().manual_seed(1)
    n, m, k, classes = 2000, 1000, 8, 10
    labels = torch.randint(0, classes, (n + m,), generator=g)
    base = torch.randn(n + m, classes, generator=g, dtype=torch.float64)
    boost = torch.rand(n + m, generator=g, dtype=torch.float64) * 3

    def logits(kept):  # (K?, N) -> (K?, N, C)
        out = base + 0.3 * torch.randn(*kept.shape, classes, generator=g, dtype=torch.float64)
        return out + torch.nn.functional.one_hot(labels, classes) * (boost * kept)[..., None]

    # x: each image IN for half of the references
    kept = torch.from_numpy(reference_kept(n + m, k, n // 2, 0, audited=np.arange(n, n + m)))
    kept[:, n:] = False  # population z: in no reference (and not in the target)
    member = torch.rand(n + m, generator=g) < 0.5
    member[n:] = False
    target = logits(member)
    p_t, p_r = true_class_probability(target, labels), true_class_probability(logits(kept), labels)
    x, z = slice(0, n), slice(n, None)
    online = rmia(p_t[x], p_r[:, x], kept[:, x], p_t[z], p_r[:, z], kept[:, z])
    a = fit_offline_a(p_r[:, x], kept[:, x], p_r[:, z], kept[:, z])
    offline = rmia(p_t[x], p_r[:, x], kept[:, x], p_t[z], p_r[:, z], kept[:, z], a=a)
    loss = -torch.nn.functional.cross_entropy(target[x], labels[x], reduction="none")
    calibrated = calibrated_loss(target[x], logits(kept)[:, x], kept[:, x], labels[x])
    for scores in (online, offline, calibrated):
        assert auroc(scores, member[x]) > auroc(loss, member[x]) + 0.03
    assert 0 <= a <= 1


def test_reference_masks_keep_half_keep_groups_whole_and_never_touch_audited_images():
    kept = reference_kept(1000, 8, 500, seed=3)
    assert (kept.sum(0) == 4).all()  # every image IN for exactly half of the references
    assert np.array_equal(kept, reference_kept(1000, 8, 500, seed=3))  # pure: same seed, same mask
    assert not np.array_equal(kept, reference_kept(1000, 8, 500, seed=4))
    # A set of K is the first K rows of a larger one: sets grow, budgets read prefixes.
    assert all(np.array_equal(reference_kept(1000, k, 500, seed=3), kept[:k]) for k in (1, 2, 5))
    assert (kept[:2].sum(0) == 1).all() and (kept[:6].sum(0) == 3).all()
    assert (reference_kept(1001, 2, 500, seed=0).sum(0) == 1).all()  # an odd pool: still complementary
    assert (kept.sum(1) == 500).all()
    fewer = reference_kept(1000, 8, 300, seed=3)  # the target trained on 30% of the pool
    assert (fewer.sum(1) == 300).all() and abs(fewer.mean() - 0.3) < 0.01
    more = reference_kept(1000, 8, 700, seed=3)  # 70%: every image still OUT of some references
    assert (more.sum(1) == 700).all() and (more.sum(0) < 8).all() and (fewer.sum(0) > 0).all()
    one = reference_kept(1000, 1, 500, seed=0)  # a single reference still trains on about half
    assert 430 < one.sum() < 570
    groups = np.repeat(np.arange(250), 4)  # tracks of 4 frames
    grouped = reference_kept(1000, 4, 500, seed=0, groups=groups)
    assert all(len(np.unique(grouped[:, groups == g], axis=1)[0]) == 1 for g in range(0, 250, 7))
    audited = np.arange(0, 1000, 12)  # one frame of every third track
    offline = reference_kept(1000, 4, 500, seed=0, groups=groups, audited=audited)
    assert not offline[:, np.isin(groups, groups[audited])].any()  # audited images (and their tracks): OUT
    assert abs(offline.sum(1).mean() - 500) < 60  # each reference still trains on about 500
    with pytest.raises(MintError, match="only 0 of the pool"):
        reference_kept(10, 2, 5, 0, audited=np.arange(10))


def test_lira_queries_are_the_image_first_then_mirrors_and_one_pixel_shifts():
    from mint.attacks.reference_set import _queries, _query

    assert _queries(1) == [(False, 0, 0)] and _queries(2) == [(False, 0, 0), (True, 0, 0)]
    eighteen = _queries(18)
    assert len(set(eighteen)) == 18 and eighteen[0] == (False, 0, 0)
    image = torch.zeros(1, 3, 5, 5)
    image[..., 2, 3] = 1.0
    assert _query(image, False, 1, 0)[0, 0, 1, 3] == 1.0  # content moves up when the crop moves down
    assert _query(image, True, 0, 0)[0, 0, 2, 1] == 1.0  # mirrored: column 3 of 5 -> column 1
    assert torch.equal(_query(image, False, 0, 0), image)


def test_offline_lira_keeps_the_most_member_like_images_apart():
    """Phi(z) is 1.0 and log Phi(z) is 0.0 for every z above about 8 and 37: such scores would tie."""
    refs = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]], dtype=torch.float64)  # OUT: mean 0.5, sd 0.5
    kept = torch.zeros(2, 3, dtype=torch.bool)
    scores, _ = lira(torch.tensor([30.0, 40.0, 50.0], dtype=torch.float64), refs, kept, online=False)
    assert scores[0] < scores[1] < scores[2]  # z = 59, 79, 99: all distinct
