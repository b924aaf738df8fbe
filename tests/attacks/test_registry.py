"""Every attack of the one registry, on one simulated target: it finds members, and is reported as listed."""

import json

import pytest
import torch

from mint.attacks import ATTACKS, BASELINES, BLACK_BOX, LEARNED_ATTACKS, REFERENCE_ATTACKS, baseline_scores
from mint.attacks.learned import LearnedAttacks
from mint.attacks.reference import attack_scores
from mint.attacks.registry import BY_NAME, REPORT_KEYS, report_families
from mint.evaluation import auroc
from mint.records.scores import schema_path

N, SCORED, CLASSES, REFERENCES = 800, 600, 4, 8  # images, of which the first 600 are scored


def simulated_world(seed: int = 0) -> dict:
    """A target and 8 references whose true-class logit rises by 2 on the images they trained on.

    Each image has its own difficulty (the same for every model), so a threshold finds members
    and a calibrated attack finds them better. The target trains on half the scored images of each class; the
    last 200 images are its non-members (RMIA's population).
    """
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(N) % CLASSES
    difficulty = 2.0 * torch.randn(N, generator=g, dtype=torch.float64)
    members = ((torch.arange(N) // CLASSES) % 2 == 0).long()  # every class on both sides
    members[SCORED:] = 0
    kept = torch.rand(REFERENCES, N, generator=g) < 0.5  # online references: about half IN each image

    def logits(trained: torch.Tensor) -> torch.Tensor:
        z = 0.3 * torch.randn(N, CLASSES, generator=g, dtype=torch.float64)
        z[torch.arange(N), labels] += difficulty + 2.0 * trained.double()
        return z

    images = (difficulty[:, None, None, None].float().sigmoid().expand(N, 3, 8, 8)).clone()
    return {
        "labels": labels,
        "members": members,
        "kept": kept,
        "images": images,
        "target": logits(members),  # (N, C)
        "references": torch.stack([logits(k) for k in kept]),  # (K, N, C)
    }


WORLD = simulated_world()


def scores_of(attack: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(scores, members) of the images the attack is evaluated on."""
    w = WORLD
    family = BY_NAME[attack].family
    if family == "threshold":
        scores = baseline_scores(w["target"][:SCORED], w["labels"][:SCORED])[attack]
        return scores, w["members"][:SCORED]
    if family == "learned":  # fitted on the first 300 scored images, early-stopped on the next 100
        parts = [slice(0, 300), slice(300, 400), slice(400, SCORED)]
        train, val, test = (
            {
                "logits": w["target"][p],
                "labels": w["labels"][p],
                "members": w["members"][p],
                "images": w["images"][p],
            }
            for p in parts
        )
        learned = LearnedAttacks(CLASSES, seed=0).fit(train, val)
        table = learned.scores(test["logits"], test["labels"], test["images"])
        return table[:, LEARNED_ATTACKS.index(attack)], test["members"]
    notes: list[str] = []
    table, _ = attack_scores(
        w["target"][:, None], w["references"][:, :, None], w["kept"], w["labels"], SCORED, True, None, notes
    )
    # An online attack scores the images with IN and OUT references, an offline one those with OUT ones.
    kept = w["kept"][:, :SCORED]
    online = attack in ("lira_online", "lira_fixed_variance", "rmia_online")
    scorable = (kept.any(0) & (~kept).any(0)) if online else (~kept).any(0)
    assert torch.equal(table[attack].isnan(), ~scorable)  # NaN: "not applicable", nowhere else
    return table[attack][scorable], w["members"][:SCORED][scorable]


@pytest.mark.parametrize("attack", [a.name for a in ATTACKS])
def test_every_attack_scores_in_float64_and_finds_the_members(attack):
    scores, members = scores_of(attack)
    assert scores.dtype == torch.float64 and scores.shape == members.shape
    assert not scores.isnan().any() and not scores.isinf().any()
    found = auroc(scores, members)
    # The label-blind threshold attacks see the difficulty as much as the membership (~0.65); the
    # others read the true class or calibrate it away.
    assert found > (0.6 if attack in ("confidence", "entropy") else 0.7), found


def test_calibrated_attacks_beat_the_loss_threshold_on_images_of_differing_difficulty():
    loss = auroc(*scores_of("loss"))
    for attack in ("lira_online", "rmia_online", "calibrated_loss"):
        assert auroc(*scores_of(attack)) > loss + 0.05, attack


def test_the_registry_is_the_one_list_the_report_and_its_schema_follow():
    assert len({a.name for a in ATTACKS}) == len(ATTACKS)  # one name each
    assert BLACK_BOX == BASELINES + LEARNED_ATTACKS and all(BY_NAME[n].black_box for n in BLACK_BOX)
    assert all(not BY_NAME[n].black_box for n in REFERENCE_ATTACKS)
    # Fitted on the detector's training set, a learned attack picks its threshold on validation.
    assert {BY_NAME[n].threshold_set for n in LEARNED_ATTACKS} == {"val"}
    assert {BY_NAME[n].threshold_set for n in (*BASELINES, *REFERENCE_ATTACKS)} == {"train"}
    schema = json.loads(schema_path().read_text())["properties"]
    for family, key in REPORT_KEYS.items():
        listed = [a.name for a in ATTACKS if a.family == family]
        assert schema[key].get("required", listed) == listed, key  # reference attacks: optional
    reports = {a.name: {"auroc": i} for i, a in enumerate(ATTACKS) if a.name != "rmia_online"}
    grouped = report_families(reports | {"mint": {}})
    assert list(grouped) == ["baselines", "learned_attacks", "reference_attacks"]
    assert list(grouped["reference_attacks"]) == [n for n in REFERENCE_ATTACKS if n != "rmia_online"]
    assert sum(len(g) for g in grouped.values()) == len(ATTACKS) - 1  # the detector in none of them
