"""The noise DP-SGD plans for the same epsilon with each accountant (`dp_accountant`: rdp or prv).

    python benchmarks/dp_accountants.py

The settings of docs/results.md section 14 (Poisson sampling at q = 0.01, 30 epochs, delta =
5,000^-1.1): for each epsilon, Opacus' noise multiplier under the RDP and the PRV accountant, the
seconds each takes to plan, and their ratio (less noise for the same guarantee: a more useful target).
No training: the plan alone.
"""

from __future__ import annotations

import time
import warnings

from opacus.accountants.utils import get_noise_multiplier

SAMPLE_RATE, EPOCHS, DELTA = 0.01, 30, 5000**-1.1


def main() -> None:
    print("epsilon | rdp noise (s) | prv noise (s) | prv / rdp")
    for epsilon in (1, 4, 16):
        row = {}
        for accountant in ("rdp", "prv"):
            start = time.perf_counter()
            with warnings.catch_warnings():  # the PRV accountant warns about its numerical tolerances
                warnings.simplefilter("ignore")
                noise = get_noise_multiplier(
                    target_epsilon=epsilon,
                    target_delta=DELTA,
                    sample_rate=SAMPLE_RATE,
                    epochs=EPOCHS,
                    accountant=accountant,
                )
            row[accountant] = (noise, time.perf_counter() - start)
        (rdp, rdp_s), (prv, prv_s) = row["rdp"], row["prv"]
        print(f"{epsilon:7} | {rdp:.4f} ({rdp_s:.1f}) | {prv:.4f} ({prv_s:.1f}) | {prv / rdp:.3f}")


if __name__ == "__main__":
    main()
