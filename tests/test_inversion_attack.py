"""The measurement responds to information: an invertible cut leaks almost everything, a constant one
nothing beyond the floor. Real photographs (the embedded set) at 16×16, tiny frozen encoders."""

import pytest
import torch
from torch import nn

from inversion.attack import TrainConfig, attack_split
from inversion.data import Normalizer, embedded
from inversion.features import group_splits, iter_split_features
from inversion.metrics import no_information_floor
from profiler.graph import split_model

SIZE = 16


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def images():
    return embedded(SIZE, n_train=512, n_test=64, seed=0)


class Constant(nn.Module):
    """Ignores its input: the feature carries no information about the image."""

    def forward(self, x):
        return torch.zeros_like(x[:, :4]) + 1.0


def _features(encoder, images, split=1):
    torch.manual_seed(0)
    model = split_model(encoder.eval())
    norm = Normalizer()
    (feats,) = list(iter_split_features(model, norm.normalize(images.train), norm.normalize(images.test),
                                        [split], torch.device("cpu"), cache_bytes=1 << 30))
    return feats


def test_invertible_cut_leaks_almost_everything(images):
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Conv2d(3, 32, 1), nn.Conv2d(32, 10, 1))    # 1×1 convs, full rank 3 → 32
    feats = _features(encoder, images)
    outcome = attack_split(feats, images.train, images.test, TrainConfig(steps=150, batch_size=32),
                           torch.device("cpu"), seed=0)
    assert outcome.leakage.ssim.mean > 0.9
    assert outcome.leakage.psnr.mean > 25


def test_constant_feature_leaks_nothing_beyond_the_floor(images):
    encoder = nn.Sequential(nn.Conv2d(3, 4, 1), Constant(), nn.Conv2d(4, 4, 1))
    feats = _features(encoder, images, split=1)
    assert torch.all(feats.train == feats.train[0])
    outcome = attack_split(feats, images.train, images.test, TrainConfig(steps=150, batch_size=32, loss="mse"),
                           torch.device("cpu"), seed=0)
    floor = no_information_floor(images.train, images.test)
    lo, hi = floor.ssim.ci95
    assert lo <= outcome.leakage.ssim.mean <= hi
    assert outcome.leakage.ssim.mean < 0.9 * 0.9   # far from what the invertible cut reaches


def test_feature_cache_groups_respect_the_memory_cap():
    shapes = {1: (4, 8, 8), 2: (4, 8, 8), 3: (16,)}      # 256, 256, 16 elements; bf16 = 2 bytes
    assert group_splits(shapes, n_images=10, cache_bytes=10_000) == [[1], [2, 3]]
    assert group_splits(shapes, n_images=10, cache_bytes=100_000) == [[1, 2, 3]]
    assert group_splits(shapes, n_images=10, cache_bytes=1) == [[1], [2], [3]]
