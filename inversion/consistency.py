"""A real attacker never gains by waiting: the feature at a deeper split is a function of the shallower
one, so Lea(z_deep) ≤ Lea(z_shallow) for the best decoders. A measurement that says otherwise means the
shallower split's decoder is under-trained or too weak.

The check is paired over the same held-out images: for every pair z_a < z_b with per-image SSIM, the mean
of SSIM_b − SSIM_a and its 95 % Student-t CI; a pair is a violation when the whole CI lies above 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from inversion.metrics import mean_ci95


def monotonicity_violations(splits: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """Pairs (shallow, deep) whose deeper split measures above the shallower beyond the paired 95 % CI."""
    per_image = {z: np.asarray(e["ssim_per_image"], dtype=np.float64) for z, e in splits.items()
                 if isinstance(e.get("ssim_per_image"), (list, tuple)) and len(e["ssim_per_image"]) > 1}
    found = []
    zs = sorted(per_image)
    for i, shallow in enumerate(zs):
        for deep in zs[i + 1:]:
            a, b = per_image[shallow], per_image[deep]
            if len(a) != len(b):
                continue
            excess = mean_ci95(b - a)
            if excess.ci95[0] > 0:
                found.append({"shallow": shallow, "deep": deep, "excess_ssim": round(excess.mean, 4),
                              "excess_ci95": [round(excess.ci95[0], 4), round(excess.ci95[1], 4)],
                              "n": excess.n})
    return found


def describe(violation: dict[str, Any]) -> str:
    v = violation
    return (f"split {v['deep']} measures above split {v['shallow']} by {v['excess_ssim']:+.4f} SSIM "
            f"(paired 95 % CI [{v['excess_ci95'][0]:+.4f}, {v['excess_ci95'][1]:+.4f}], {v['n']} images); "
            f"a deeper feature cannot leak more, so split {v['shallow']}'s decoder is under-trained: "
            "its number is a lower bound")
