"""Extension points used from outside the package: a user's module registers a model and an op formula
counted as MACs, and ``cli.py profile --model module:factory`` honours both.

The reference is independent of fvcore and of our formulas: ``torch.utils.flop_counter.FlopCounterMode``
(2 FLOPs per MAC) on the model run with PyTorch's math attention kernel, whose matrix products it sees.
"""

from __future__ import annotations

import json
import textwrap
import uuid

import pytest
import torch
from click.testing import CliRunner
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from cli import main
from profiler import costs, zoo
from profiler.costs import count_compute

USER_MODULE = '''
import math

import torch.nn.functional as F
from torch import nn

from profiler.costs import register_op_formula, value_shape
from profiler.zoo import register_model


@register_op_formula("aten::scaled_dot_product_attention", counts_as="macs", note="QK^T and attention x V")
def sdpa_macs(inputs, outputs):
    (*batch, L, E), (*_, S, _), (*_, Ev) = (value_shape(v) for v in inputs[:3])
    return math.prod(batch) * L * S * (E + Ev)


class TinyAttention(nn.Module):
    """Patch embedding, one two-head self-attention block with a residual add, a linear head."""

    def __init__(self, dim=16, heads=2):
        super().__init__()
        self.heads = heads
        self.embed = nn.Conv2d(3, dim, 4, stride=4)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.head = nn.Linear(dim, 10)

    def forward(self, x):
        t = self.embed(x).flatten(2).transpose(1, 2)
        B, N, D = t.shape
        q, k, v = self.qkv(t).reshape(B, N, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v)
        t = t + self.proj(a.transpose(1, 2).reshape(B, N, D))
        return self.head(t.mean(1))


@register_model("MODEL_NAME", input_shape=(3, 32, 32), description="patch embedding + one attention block")
def make_tiny_attention():
    return TinyAttention()
'''


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """The module above, written outside the package; registries restored afterwards."""
    monkeypatch.setattr(zoo.ZOO, "_specs", dict(zoo.ZOO._specs))
    monkeypatch.setattr(costs.OP_FORMULAS, "_entries", dict(costs.OP_FORMULAS._entries))
    suffix = uuid.uuid4().hex[:8]
    module, model = f"user_attention_{suffix}", f"tinyattn_{suffix}"
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(USER_MODULE).replace("MODEL_NAME", model))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return module, model


def _flop_counter_macs(model: torch.nn.Module, x: torch.Tensor) -> int:
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(x)
    assert counter.get_total_flops() % 2 == 0
    return counter.get_total_flops() // 2


def test_registered_model_and_mac_formula_from_a_users_module(user_module, tmp_path):
    module, model_name = user_module
    result = CliRunner().invoke(main, ["profile", "--model", f"{module}:make_tiny_attention", "--no-latency",
                                       "--out", "tiny.json"])
    assert result.exit_code == 0, result.output
    assert result.stderr.strip() == "wrote tiny.json"
    table = json.loads((tmp_path / "tiny.json").read_text())
    # @register_model's name and input shape are used on the module:factory route
    assert table["model"] == model_name and table["input_shape"] == [3, 32, 32]

    loaded = zoo.load_model(model_name)
    reference = _flop_counter_macs(loaded.model, loaded.example_input())
    assert table["totals"]["macs"] == reference and table["totals"]["flops"] == 2 * reference
    heads, tokens, head_dim = 2, 64, 8
    sdpa = {u["op"]: u for u in table["uncounted"]}["aten::scaled_dot_product_attention"]
    assert sdpa["counted_as"] == "macs" and sdpa["ops"] == heads * tokens * tokens * 2 * head_dim
    assert sum(table["splits"][0][k] for k in ("device_macs", "server_macs")) == reference

    # without the formula the attention is missing from MACs, and said to be
    del costs.OP_FORMULAS._entries["aten::scaled_dot_product_attention"]
    plain = count_compute(loaded.model, loaded.example_input())
    assert plain.macs == reference - sdpa["ops"]
    assert plain.uncounted_calls["aten::scaled_dot_product_attention"] == 1


def test_formula_must_say_what_it_counts_as():
    with pytest.raises(ValueError, match="counts_as"):
        costs.register_op_formula("aten::gelu", note="x", counts_as="flops")
