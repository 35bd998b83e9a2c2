"""Compute, parameter and byte counts against hand arithmetic, fvcore's whole-model total and
torchvision's published MAC figures."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from fvcore.nn import FlopCountAnalysis
from torch import nn

from profiler.costs import count_compute, count_units, state_sizes, tensor_bytes, uncounted_report
from profiler.graph import split_model
from profiler.zoo import build_on_meta


def _skeleton(name: str) -> nn.Module:
    """A zoo model with uninitialised storage: same graph and shapes, no seconds spent on init."""
    return build_on_meta(name).to_empty(device="cpu").eval()


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1, bias=False)

    def forward(self, x):
        return self.conv(x) + x


def test_hand_computed_conv_linear_pool_relu():
    # conv 3->4, 3x3, no padding, 8x8 input -> 4x6x6; MACs = 4*6*6 outputs * 3*3*3 = 3888
    # relu on 144 elements -> 144 comparisons; max-pool 2x2 -> 4x3x3 = 36 outputs * 4 = 144 comparisons
    # linear 36 -> 5: 180 MACs
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(36, 5))
    count = count_compute(model, torch.randn(1, 3, 8, 8))
    assert count.macs == 3888 + 180
    assert count.macs_by_op["conv"] == 3888
    assert count.other_ops == Counter({"aten::relu": 144, "aten::max_pool2d": 144})
    assert not count.uncounted_calls


def test_average_pooling_is_counted_like_max_pooling_and_dropout_is_free():
    # avg-pool 2x2 on 4x6x6 -> 4x3x3 = 36 outputs x 4 additions; in-place dropout is the identity in eval
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AvgPool2d(2), nn.Dropout(inplace=True)).eval()
    count = count_compute(model, torch.randn(1, 3, 8, 8))
    assert count.macs == 3888 and count.other_ops == Counter({"aten::avg_pool2d": 144})
    assert not count.uncounted_calls


def test_batch_norm_at_inference_is_two_macs_per_element_with_affine_one_without():
    # the convention text says so; fvcore is the one counting it
    for affine, per_element in ((True, 2), (False, 1)):
        count = count_compute(nn.BatchNorm2d(4, affine=affine).eval(), torch.randn(1, 4, 5, 5))
        assert count.macs == per_element * 100


def test_residual_add_is_counted_apart_from_macs():
    count = count_compute(Residual(), torch.randn(1, 4, 5, 5))
    assert count.macs == 4 * 25 * 4 * 9  # 100 outputs x 36 taps
    assert count.other_ops == Counter({"aten::add": 100})
    assert count.other_calls == Counter({"aten::add": 1})


def test_uncounted_ops_are_listed_not_hidden():
    class Gelu(nn.Module):
        def forward(self, x):
            return torch.nn.functional.gelu(x)

    counts, _ = count_units([nn.Linear(3, 3), Gelu()], torch.randn(1, 3))
    report = {r["op"]: r for r in uncounted_report(counts)}
    assert report["aten::gelu"]["count"] == 1 and report["aten::gelu"]["ops"] is None
    assert "missing" in report["aten::gelu"]["note"]


def test_params_shared_between_units_counted_once():
    shared = nn.Linear(4, 4)
    sizes = state_sizes([nn.Sequential(shared), nn.Sequential(shared, nn.BatchNorm1d(4))])
    assert sizes[0].params == 20 and sizes[0].param_bytes == 80
    # second unit: only the batch-norm's weight and bias (8 params) plus running mean/var (8 floats)
    assert sizes[1].params == 8 and sizes[1].param_bytes == 4 * (8 + 8)


def test_transmitted_bytes_are_the_real_tensor_size():
    t = torch.zeros(1, 64, 56, 56)
    assert tensor_bytes(t) == 4 * 64 * 56 * 56 == t.untyped_storage().nbytes()
    assert tensor_bytes(t.half()) == 2 * 64 * 56 * 56


# torchvision's published GMACs (conv + linear), e.g. ResNet18_Weights.IMAGENET1K_V1.meta["_ops"]
PUBLISHED_GMACS = {"resnet18": 1.814, "resnet50": 4.089, "vgg16": 15.47, "vgg19": 19.63}


@pytest.mark.parametrize("name", sorted(PUBLISHED_GMACS))
def test_units_sum_to_fvcore_total_and_match_published_figures(name):
    model = _skeleton(name)
    x = torch.randn(1, 3, 224, 224)
    split = split_model(model)
    counts, cuts = count_units([u.module for u in split.units], x)
    with torch.no_grad():
        whole = FlopCountAnalysis(model, (x,)).unsupported_ops_warnings(False).total()
    assert sum(c.macs for c in counts) == whole
    conv_linear = sum(c.macs_by_op["conv"] + c.macs_by_op["linear"] + c.macs_by_op["addmm"] for c in counts)
    assert conv_linear / 1e9 == pytest.approx(PUBLISHED_GMACS[name], rel=0.01)
    assert [tuple(c.shape) for c in cuts][-1] == (1, 1000)
