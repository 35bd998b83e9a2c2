"""SSIM/PSNR helpers against skimage and hand-computed values; the CI against a t-table value."""

import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from inversion.data import Normalizer
from inversion.metrics import mean_ci95, no_information_floor, psnr_per_image, ssim_per_image, ssim_torch


def _pair(seed=0, size=24):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(2, 3, size, size, generator=g)
    b = (a + 0.15 * torch.randn(2, 3, size, size, generator=g)).clamp(0, 1)
    return a, b


def test_ssim_matches_skimage_called_directly():
    a, b = _pair()
    ours = ssim_per_image(a, b)
    for i in range(2):
        x = a[i].permute(1, 2, 0).double().numpy()
        y = b[i].permute(1, 2, 0).double().numpy()
        assert ours[i] == pytest.approx(structural_similarity(x, y, data_range=1.0, channel_axis=-1), abs=1e-9)


def test_constant_images_give_the_hand_computed_luminance_term():
    # Flat images: SSIM = (2ab + C1) / (a² + b² + C1) with C1 = (0.01 · data_range)² = 1e-4 for [0, 1].
    a, b = 0.02, 0.04
    x = torch.full((1, 3, 16, 16), a)
    y = torch.full((1, 3, 16, 16), b)
    expected = (2 * a * b + 1e-4) / (a * a + b * b + 1e-4)          # 0.80952
    wrong_range = (2 * a * b + 4e-4) / (a * a + b * b + 4e-4)       # 0.83333: skimage's float default range 2
    assert ssim_per_image(x, y)[0] == pytest.approx(expected, abs=1e-6)
    assert abs(ssim_per_image(x, y)[0] - wrong_range) > 0.02
    assert float(ssim_torch(x, y)) == pytest.approx(expected, abs=1e-5)


def test_torch_ssim_used_for_training_equals_skimage_mean():
    a, b = _pair(seed=3)
    assert float(ssim_torch(a, b)) == pytest.approx(float(ssim_per_image(a, b).mean()), abs=1e-5)


def test_normalised_images_must_be_denormalised_first():
    a, b = _pair(seed=1)
    norm = Normalizer()
    assert torch.allclose(norm.denormalize(norm.normalize(a)), a, atol=1e-6)
    right = ssim_per_image(a, b).mean()
    wrong = ssim_per_image(norm.normalize(a), norm.normalize(b)).mean()   # clamped to [0,1]: garbage
    assert abs(right - wrong) > 0.05


def test_psnr_hand_computed():
    x = torch.zeros(1, 3, 8, 8)
    y = torch.full((1, 3, 8, 8), 0.1)          # MSE = 0.01 → PSNR = 10·log10(1 / 0.01) = 20 dB
    assert psnr_per_image(x, y)[0] == pytest.approx(20.0, abs=1e-5)


def test_mean_ci95_is_the_student_t_interval():
    est = mean_ci95(np.array([1.0, 2.0, 3.0, 4.0, 5.0]))
    half = 2.7764451 * math.sqrt(2.5) / math.sqrt(5)     # t_{0.975,4} from a table
    assert est.mean == 3.0
    assert est.ci95 == pytest.approx((3.0 - half, 3.0 + half), abs=1e-6)


def test_floor_scores_the_mean_auxiliary_image():
    train = torch.stack([torch.full((3, 8, 8), 0.2), torch.full((3, 8, 8), 0.6)])   # mean image 0.4
    test = torch.full((1, 3, 8, 8), 0.8)
    floor = no_information_floor(train, test)
    assert floor.psnr.mean == pytest.approx(10 * math.log10(1 / 0.16), abs=1e-5)
    assert floor.ssim.mean == pytest.approx((2 * 0.4 * 0.8 + 1e-4) / (0.16 + 0.64 + 1e-4), abs=1e-6)
