"""Split points found from the traced graph are real: head(x) then tail(h) is the whole model."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from common.errors import UserInputError
from profiler.graph import EXPLICIT_UNITS_ATTR, split_model
from profiler.zoo import available, load_model

from zoofacts import PAPER_UNITS


def _small_input(shape: tuple[int, ...]) -> torch.Tensor:
    # The cut structure does not depend on resolution; 64 px keeps the 224-px models fast to run.
    c, h, w = shape
    return torch.randn(2, c, min(h, 64), min(w, 64), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", available())
def test_every_split_of_every_zoo_model_reproduces_the_model(name: str) -> None:
    loaded = load_model(name)
    sm = split_model(loaded.model)
    assert sm.num_units == PAPER_UNITS.get(name, sm.num_units)
    x = _small_input(loaded.input_shape)
    with torch.inference_mode():
        reference = loaded.model(x)
        cut = sm.cut_tensors(x)
        for z in range(sm.num_units + 1):
            h = sm.head(z)(x)
            assert torch.equal(h, cut[z]), f"{name}: head({z}) differs from the cut tensor"
            out = sm.tail(z)(h)
            assert (out - reference).abs().max().item() <= 1e-4, f"{name}: split {z} changes the output"


class _Residual(nn.Module):
    """conv → relu → conv, plus the input: two tensors live between the convs, so one unit."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.a = nn.Conv2d(4, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 4, 3, padding=1)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        x = F.relu(self.stem(x))
        y = self.b(F.relu(self.a(x))) + x
        return self.head(F.adaptive_avg_pool2d(y, 1).flatten(1))


def test_residual_block_is_one_unit_and_pooling_folds_into_the_unit_before() -> None:
    sm = split_model(_Residual())
    assert [u.name for u in sm.units] == ["stem", "a", "head"]
    assert sm.units[1].modules == ("a", "b")
    x = torch.randn(1, 3, 8, 8)
    cut = sm.cut_tensors(x)
    # stem's unit ends with its relu (4×8×8); the block's unit ends after pooling + flatten (4 values).
    assert [tuple(t.shape) for t in cut] == [(1, 3, 8, 8), (1, 4, 8, 8), (1, 4), (1, 2)]


def test_functional_conv_and_matmul_open_units() -> None:
    class Functional(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.randn(5, 3, 1, 1))
            self.m = nn.Parameter(torch.randn(5, 2))

        def forward(self, x):
            x = torch.relu(F.conv2d(x, self.w))
            return x.mean((2, 3)) @ self.m

    model = Functional()
    sm = split_model(model)
    x = torch.randn(2, 3, 4, 4)
    assert sm.num_units == 2
    assert torch.allclose(sm.tail(1)(sm.head(1)(x)), model(x))


def test_untraceable_model_names_the_line_and_the_way_out() -> None:
    class DataDependent(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3, 3)

        def forward(self, x):
            if x.sum() > 0:
                return self.fc(x)
            return x

    with pytest.raises(UserInputError) as err:
        split_model(DataDependent())
    message = str(err.value)
    assert "not traceable" in message and "test_profiler_graph.py" in message
    assert "if x.sum() > 0" in message and EXPLICIT_UNITS_ATTR in message


def test_explicit_units_skip_tracing() -> None:
    seq = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    setattr(seq, EXPLICIT_UNITS_ATTR, True)
    sm = split_model(seq)
    assert sm.num_units == 3 and [u.name for u in sm.units] == ["0", "1", "2"]


def test_models_with_two_outputs_or_no_layer_are_refused() -> None:
    class TwoOut(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3, 3)

        def forward(self, x):
            return self.fc(x), x

    with pytest.raises(UserInputError, match="one tensor"):
        split_model(TwoOut())
    with pytest.raises(UserInputError, match="no computational layer"):
        split_model(nn.Sequential(nn.ReLU()))
    with pytest.raises(UserInputError, match="out of range"):
        split_model(nn.Sequential(nn.Linear(2, 2))).head(5)
