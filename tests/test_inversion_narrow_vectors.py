"""A narrow vector never measures below the decoder that trains from the seed-side linear start.

The full-resolution linear start of a vector (2026-12-02) is the better *start* by its own out-of-fold
SSIM, yet on Fashion-MNIST's LeNet vectors a decoder trained from it ended 0.02 SSIM below one trained
from the start at the learned seed's side (the decoder before 2026-12-02): lenet7 z=5 0.720 against
0.743. ``train_decoder`` now trains both and keeps the one better on held-out auxiliary images.

Known answer: the decoder trained from the seed-side start alone, got here by making the start's side
rule return the seed's side (the pre-2026-12-02 start). Case: a 256-wide orthogonal mix of a ReLU
4 × 8 × 8 strided-conv feature of 32-px gray silhouettes on black (drawn here, like Fashion-MNIST's
dark backgrounds); measured 2026-12-03: full-resolution start 0.7506, seed-side start 0.7562 (Intel); on an
AMD EPYC the same code gives 0.7535 and 0.7565 and the held-out choice keeps the first: on the victim's images the
kept decoder is asserted to lie within the 95 % CI of its mean, not above the other.
"""

import pytest
import torch

from inversion.attack import TrainConfig, attack_split
from inversion.decoder import VECTOR_MIN_SIDE, VECTOR_SEED_FRACTION, LinearImageSeed
from inversion.features import SplitFeatures

SIZE, CHANNELS, STRIDE = 32, 4, 4
WIDTH = CHANNELS * (SIZE // STRIDE) ** 2      # 256

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def _silhouettes(n: int, seed: int) -> torch.Tensor:
    """Two textured ellipses of random brightness per image on a black background, N × 1 × 32 × 32."""
    gen = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, SIZE), torch.linspace(-1, 1, SIZE), indexing="ij")
    out = torch.zeros(n, 1, SIZE, SIZE)
    for i in range(n):
        for _ in range(2):
            cx, cy = (torch.rand(2, generator=gen) - 0.5) * 0.8
            ax, ay = 0.2 + 0.6 * torch.rand(2, generator=gen)
            value = 0.3 + 0.7 * torch.rand(1, generator=gen)
            texture = 1 + 0.3 * torch.sin(xx * (3 + 10 * torch.rand(1, generator=gen))
                                          + 6 * torch.rand(1, generator=gen))
            inside = (((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2) < 1
            out[i, 0] = torch.where(inside, (value * texture).clamp(0, 1), out[i, 0])
    return out


def _orthogonal(n: int, seed: int) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(n, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return (q * torch.sign(torch.diagonal(r))).float()


@pytest.mark.slow
def test_a_narrow_vector_measures_at_least_what_the_seed_side_start_gives(monkeypatch):
    train, test = _silhouettes(1024, 0), _silhouettes(128, 1)
    torch.manual_seed(5)
    conv = torch.nn.Conv2d(1, CHANNELS, STRIDE, stride=STRIDE)
    mix = _orthogonal(WIDTH, 7)

    @torch.no_grad()
    def vector(x: torch.Tensor) -> torch.Tensor:
        return torch.relu(conv((x - 0.5) / 0.25)).flatten(1) @ mix.T

    def attack():
        feats = SplitFeatures(1, vector(train), vector(test))
        return attack_split(feats, train, test, TrainConfig(steps=300), torch.device("cpu"), seed=0)

    measured = attack()
    seed_side_px = max(VECTOR_MIN_SIDE, SIZE // VECTOR_SEED_FRACTION)                # 8
    monkeypatch.setattr(LinearImageSeed, "_smoothing_side", lambda self, bases, target: seed_side_px)
    seed_side = attack()
    assert measured.vector and measured.feature_width == WIDTH and not measured.data_limited
    assert measured.convergence.val_ssim[-1] >= seed_side.convergence.val_ssim[-1]     # held-out auxiliary
    # the victim's 128 test images: not measurably below (the two decoders sit 0.003 apart, and which of them
    # the held-out choice keeps turns on the CPU's rounding: AMD EPYC 2026-12-03 0.7535 vs 0.7565)
    margin = measured.leakage.ssim.mean - measured.leakage.ssim.ci95[0]      # half-width of the 95 % CI
    assert 0 < margin < 0.05
    assert measured.leakage.ssim.mean >= seed_side.leakage.ssim.mean - margin, \
        (measured.leakage.ssim.mean, seed_side.leakage.ssim.mean, margin)
