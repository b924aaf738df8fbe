import math

import pytest
import torch

from mint.audit.statistics import mann_whitney_greater, member_fraction_estimate


def test_mann_whitney_known_values():
    # x entirely above y: U = nx * ny, AUROC 1; the exact one-sided p for 5 vs 5 is 1/252 ~ 0.004.
    x, y = torch.arange(5.0, 10.0), torch.arange(0.0, 5.0)
    out = mann_whitney_greater(x, y)
    assert out["u"] == 25 and out["auroc"] == 1.0
    assert 0.003 < out["p_value"] < 0.01
    assert mann_whitney_greater(y, x)["p_value"] > 0.99


def test_ties_and_degenerate_samples():
    out = mann_whitney_greater(torch.ones(10), torch.ones(10))
    assert out["auroc"] == 0.5 and out["p_value"] == 1.0
    with pytest.raises(ValueError, match="both samples need scores"):
        mann_whitney_greater(torch.ones(3), torch.ones(0))


def test_p_value_is_calibrated_under_the_null():
    gen = torch.Generator().manual_seed(0)
    ps = [mann_whitney_greater(torch.randn(50, generator=gen), torch.randn(80, generator=gen))["p_value"]
          for _ in range(400)]  # fmt: skip
    share = sum(p < 0.05 for p in ps) / len(ps)
    assert 0.02 < share < 0.09  # about 5% false alarms


def test_fraction_of_a_mixed_set_is_recovered():
    gen = torch.Generator().manual_seed(1)
    members = torch.randn(1000, generator=gen) + 1.0
    nonmembers = torch.randn(1000, generator=gen)
    audited = torch.cat([torch.randn(300, generator=gen) + 1.0, torch.randn(700, generator=gen)])
    out = member_fraction_estimate(audited, nonmembers, members, n_boot=200)
    assert abs(out["fraction"] - 0.3) < 0.08
    assert out["ci_low"] < 0.3 < out["ci_high"]
    none = member_fraction_estimate(torch.randn(500, generator=gen), nonmembers, members, n_boot=100)
    assert none["ci_low"] <= 0.05 and none["raw"][1] < 0 < none["raw"][2]  # raw: not clipped at 0
    assert none["consistent_with_none"] and not out["consistent_with_none"]
    from mint.audit.report import share_text

    assert share_text(none).endswith("consistent with none of the set having been used")
    assert "raw estimate 0.3" in share_text(out) and "consistent with none" not in share_text(out)
    useless = member_fraction_estimate(audited, nonmembers, torch.randn(100, generator=gen) - 5, n_boot=10)
    assert math.isnan(useless["fraction"])
