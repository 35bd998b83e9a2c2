"""Leakage metrics: Lea(z) = SSIM(I_o, I_r | z) (paper eq. 3), PSNR beside it, 95 % CIs and the floor.

Evaluation uses scikit-image on de-normalised images in [0, 1] with ``data_range=1`` (without it
skimage assumes a range of 2 for float images and inflates SSIM) and ``channel_axis``. Training uses
:func:`ssim_torch`, a differentiable SSIM with skimage's defaults (7×7 uniform window, sample
covariance, K1 = 0.01, K2 = 0.03), so the loss and the reported metric are the same quantity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import stats
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

SSIM_WINDOW = 7
SSIM_K1, SSIM_K2 = 0.01, 0.03


@dataclass(frozen=True)
class Estimate:
    """Mean of per-image values with a two-sided 95 % Student-t confidence interval."""

    mean: float
    ci95: tuple[float, float]
    n: int

    def as_json(self) -> dict:
        return {"mean": _finite(self.mean), "ci95": [_finite(self.ci95[0]), _finite(self.ci95[1])], "n": self.n}


def _finite(x: float) -> float | None:
    """JSON has no inf/NaN: such values become ``null``."""
    return float(x) if math.isfinite(x) else None


def mean_ci95(values: np.ndarray) -> Estimate:
    """Mean ± t_{0.975, n-1} · s / √n over the held-out images (NaN-free input; inf propagates)."""
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    mean = float(values.mean())
    if n < 2 or not np.all(np.isfinite(values)):
        return Estimate(mean, (mean, mean), n)
    half = float(stats.t.ppf(0.975, n - 1) * values.std(ddof=1) / math.sqrt(n))
    return Estimate(mean, (mean - half, mean + half), n)


def _hwc(images: torch.Tensor) -> np.ndarray:
    """N × 3 × H × W tensor in [0, 1] → N × H × W × 3 float64 array."""
    return images.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy().astype(np.float64)


def ssim_per_image(originals: torch.Tensor, reconstructions: torch.Tensor) -> np.ndarray:
    """skimage SSIM of each pair, images in [0, 1] (``data_range=1``, ``channel_axis=-1``)."""
    a, b = _hwc(originals), _hwc(reconstructions)
    return np.array([structural_similarity(x, y, data_range=1.0, channel_axis=-1) for x, y in zip(a, b)])


def psnr_per_image(originals: torch.Tensor, reconstructions: torch.Tensor) -> np.ndarray:
    """skimage PSNR (dB) of each pair with ``data_range=1``; identical pairs give inf."""
    a, b = _hwc(originals), _hwc(reconstructions)
    with np.errstate(divide="ignore"):
        return np.array([peak_signal_noise_ratio(x, y, data_range=1.0) for x, y in zip(a, b)])


@dataclass(frozen=True)
class Leakage:
    """SSIM and PSNR estimates of one set of reconstructions against the held-out originals."""

    ssim: Estimate
    psnr: Estimate


def measure(originals: torch.Tensor, reconstructions: torch.Tensor) -> Leakage:
    return Leakage(mean_ci95(ssim_per_image(originals, reconstructions)),
                   mean_ci95(psnr_per_image(originals, reconstructions)))


def no_information_floor(train_images: torch.Tensor, test_images: torch.Tensor) -> Leakage:
    """The attacker's best constant guess (the mean auxiliary image) scored against every test image."""
    guess = train_images.float().mean(dim=0, keepdim=True).expand_as(test_images)
    return measure(test_images, guess)


def ssim_torch(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Differentiable mean SSIM of two N × C × H × W batches in [0, 1], skimage's default window.

    Matches ``structural_similarity(..., data_range=1, channel_axis=...)`` averaged over the batch.
    """
    x, y = x.float(), y.float()
    c1, c2 = SSIM_K1 ** 2, SSIM_K2 ** 2
    n_px = SSIM_WINDOW ** 2
    cov_norm = n_px / (n_px - 1)
    pool = lambda t: F.avg_pool2d(t, SSIM_WINDOW, stride=1)  # noqa: E731  valid region = skimage's crop
    ux, uy = pool(x), pool(y)
    vx = cov_norm * (pool(x * x) - ux * ux)
    vy = cov_norm * (pool(y * y) - uy * uy)
    vxy = cov_norm * (pool(x * y) - ux * uy)
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.mean()
