"""Transformers: attention counted as MACs, and a split point at every transformer block boundary.

References independent of our formulas: torchvision's published operation counts (``weights.meta['_ops']``,
GMACs although torchvision calls them GFLOPS; read from the enum, nothing is downloaded), hand formulas
per layer (``4·S·d²`` projections + ``2·S²·d`` attention + ``2·S·d·d_ff`` feed-forward), and
``torch.utils.flop_counter.FlopCounterMode`` in train mode with dropout 0 and the math attention kernel
(whose matrix products it sees; it counts 2 FLOPs per MAC). Block outputs come from forward hooks on the
blocks themselves, not from the split.
"""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models.swin_transformer import _patch_merging_pad

from profiler.build import ProfileOptions, profile_model
from profiler.costs import count_compute
from profiler.graph import split_model
from profiler.zoo import LoadedModel

WIDTH, HEADS, LAYERS, TOKENS, FEATURES, CLASSES = 64, 4, 3, 16, 32, 10
D_FF = 2048   # nn.TransformerEncoderLayer's default
LAYER_NORM_MACS_PER_ELEMENT = 5   # fvcore's count for an affine layer norm (COMPUTE_CONVENTION)


class TokenEncoder(nn.Module):
    """Token embedding (a linear map of 32 features), a 3-layer nn.TransformerEncoder, a linear head."""

    def __init__(self, batch_first: bool = True):
        super().__init__()
        self.embed = nn.Linear(FEATURES, WIDTH)
        layer = nn.TransformerEncoderLayer(WIDTH, HEADS, D_FF, dropout=0.0, batch_first=batch_first)
        self.encoder = nn.TransformerEncoder(layer, LAYERS, enable_nested_tensor=False)
        self.head = nn.Linear(WIDTH, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(x)))


def _encoder_layer_matmul_macs(s: int = TOKENS, d: int = WIDTH, d_ff: int = D_FF) -> int:
    return 4 * s * d * d + 2 * s * s * d + 2 * s * d * d_ff


def _token_encoder_hand_macs() -> int:
    """Embedding + layers (matrix products, and fvcore's 5 per element for each of the 2 layer norms) + head."""
    layer_norms = 2 * LAYER_NORM_MACS_PER_ELEMENT * TOKENS * WIDTH
    return TOKENS * FEATURES * WIDTH + LAYERS * (_encoder_layer_matmul_macs() + layer_norms) + TOKENS * WIDTH * CLASSES


def _flop_counter_macs(model: nn.Module, x: torch.Tensor) -> int:
    """Train mode (no fused fast path), dropout 0, math attention kernel; FlopCounterMode's 2 per MAC halved."""
    model.train()
    try:
        with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.eval()
    return counter.get_total_flops() // 2


def _block_outputs(model: nn.Module, blocks: list[nn.Module], x: torch.Tensor) -> list[torch.Tensor]:
    """What each block really hands to the next (forward hooks on the blocks)."""
    outs: list[torch.Tensor] = []
    hooks = [b.register_forward_hook(lambda _m, _i, out: outs.append(out.detach().clone())) for b in blocks]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return outs


def _offered(cut: torch.Tensor, cuts: list[torch.Tensor]) -> bool:
    return any(c.shape == cut.shape and torch.equal(c, cut) for c in cuts)


def _profile(name: str, model: nn.Module, shape: tuple[int, ...]) -> dict:
    return profile_model(LoadedModel(name, model.eval(), shape, "none"), ProfileOptions(latency=None))


def _uncounted(table: dict) -> dict[str, dict]:
    return {u["op"]: u for u in table["uncounted"]}


@pytest.fixture(scope="module")
def vit():
    torch.manual_seed(0)
    model = torchvision.models.vit_b_16(weights=None).eval()
    x = torch.randn(1, 3, 224, 224)
    return model, x, _profile("vit_b_16", model, (3, 224, 224))


def test_vit_b_16_macs_match_torchvisions_published_count(vit):
    _, _, table = vit
    published = torchvision.models.ViT_B_16_Weights.IMAGENET1K_V1.meta["_ops"] * 1e9   # 17.564 G
    assert table["totals"]["macs"] == pytest.approx(published, rel=0.01)
    attention = _uncounted(table)["aten::_native_multi_head_attention"]
    # 12 blocks x (q,k,v,out projections 4·N·d² + Q K^T and A V 2·N²·d), N = 197 tokens, d = 768
    assert attention["counted_as"] == "macs" and attention["count"] == 12
    assert attention["ops"] == 12 * (4 * 197 * 768 ** 2 + 2 * 197 ** 2 * 768)
    assert not [u["op"] for u in table["uncounted"] if u["counted_as"] is None and "attention" in u["op"]]


def test_vit_b_16_offers_a_cut_at_every_block_boundary(vit):
    model, x, _ = vit
    split = split_model(model)
    with torch.no_grad():
        cuts = split.cut_tensors(x)
    assert torch.equal(cuts[-1], model(x).detach())
    blocks = _block_outputs(model, list(model.encoder.layers), x)
    assert len(blocks) == 12
    assert all(_offered(b, cuts) for b in blocks[:-1])
    # the last block is followed by ops that compute nothing with weights (final layer norm, class token):
    # like pooling after a CNN's last conv they fold into its unit, and the cut falls after them
    with torch.no_grad():
        assert _offered(model.encoder.ln(blocks[-1])[:, 0], cuts)
    # a block's two residual halves: attention and MLP, each its own unit, plus the stem and the head
    assert split.num_units == 1 + 2 * 12 + 1


def test_swin_t_macs_and_block_boundaries():
    torch.manual_seed(0)
    model = torchvision.models.swin_t(weights=None).eval()
    x = torch.randn(1, 3, 224, 224)
    table = _profile("swin_t", model, (3, 224, 224))
    published = torchvision.models.Swin_T_Weights.IMAGENET1K_V1.meta["_ops"] * 1e9   # 4.491 G
    assert table["totals"]["macs"] == pytest.approx(published, rel=0.01)
    stages = [list(model.features[i]) for i in (1, 3, 5, 7)]
    blocks = [block for stage in stages for block in stage]
    assert len(blocks) == 12
    with torch.no_grad():
        cuts = split_model(model).cut_tensors(x)
        outs = dict(zip(map(id, blocks), _block_outputs(model, blocks, x)))
        for stage, merge in zip(stages, (model.features[2], model.features[4], model.features[6], None)):
            assert all(_offered(outs[id(b)], cuts) for b in stage[:-1])
            # a stage's last block is followed by patch merging's gather + layer norm (or the final norm
            # and pooling) before the next weight layer: the cut falls after those, as after a CNN's pooling
            last = outs[id(stage[-1])]
            after = (merge.norm(_patch_merging_pad(last)) if merge is not None
                     else model.flatten(model.avgpool(model.permute(model.norm(last)))))
            assert _offered(after, cuts)


@pytest.mark.parametrize("batch_first", [True, False], ids=["batch-first-fused-mha", "sequence-first-sdpa"])
def test_transformer_encoder_cut_between_every_layer_and_counted(batch_first):
    torch.manual_seed(0)
    model = TokenEncoder(batch_first).eval()
    x = torch.randn(1, TOKENS, FEATURES) if batch_first else torch.randn(TOKENS, 1, FEATURES)
    split = split_model(model)
    with torch.no_grad():
        cuts = split.cut_tensors(x)
        assert torch.allclose(cuts[-1], model(x), atol=1e-6)
    layers = _block_outputs(model, list(model.encoder.layers), x)
    assert len(layers) == LAYERS and all(_offered(out, cuts) for out in layers)
    assert [u.name for u in split.units] == ["embed", "encoder.layers.0", "encoder.layers.1", "encoder.layers.2",
                                             "head"]
    with torch.no_grad():
        counts = [count_compute(u.module, c) for u, c in zip(split.units, cuts)]
    macs = sum(c.macs for c in counts)
    assert not any(c.uncounted_calls for c in counts)
    assert macs == _token_encoder_hand_macs()
    assert macs == pytest.approx(_flop_counter_macs(model, x), rel=0.01)


def test_transformer_encoder_table_has_a_split_between_every_layer():
    torch.manual_seed(0)
    table = _profile("token_encoder", TokenEncoder(), (TOKENS, FEATURES))
    assert table["totals"]["macs"] == _token_encoder_hand_macs()
    assert len(table["units"]) == LAYERS + 2 and len(table["splits"]) == LAYERS + 3
    assert [u["output_shape"] for u in table["units"]] == [[TOKENS, WIDTH]] * (LAYERS + 1) + [[TOKENS, CLASSES]]
    assert _uncounted(table)["aten::_native_multi_head_attention"]["counted_as"] == "macs"
    assert all(u["counted_as"] is not None for u in table["uncounted"])


def test_multihead_attention_with_weights_and_cross_attention_counted():
    """nn.MultiheadAttention called directly with a mask (need_weights=True: baddbmm, softmax, bmm),
    queries ≠ keys; the softmax counts as other ops."""

    class Cross(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nn.MultiheadAttention(WIDTH, HEADS, batch_first=True)

        def forward(self, x):
            q = x[:, :5]
            out, weights = self.attn(q, x, x, attn_mask=torch.zeros(5, TOKENS))
            return out.sum() + weights.sum()

    model = Cross().eval()
    x = torch.randn(1, TOKENS, WIDTH)
    with torch.no_grad():
        count = count_compute(model, x)
    length, source, d = 5, TOKENS, WIDTH
    assert count.macs == 2 * length * d * d + 2 * source * d * d + 2 * length * source * d
    assert count.macs == _flop_counter_macs(model, x)
    assert count.macs_by_op["aten::baddbmm"] == length * source * d
    assert count.other_ops["aten::softmax"] == 3 * HEADS * length * source


@pytest.mark.parametrize("op, e_v", [
    (torch.nn.functional.scaled_dot_product_attention, 5),
    (torch.ops.aten._scaled_dot_product_attention_math, 5),
    (torch.ops.aten._scaled_dot_product_flash_attention_for_cpu, 8),
], ids=["sdpa", "math", "flash-for-cpu"])
def test_attention_kernels_counted_by_the_same_formula(op, e_v):
    """The aten sdpa kernels as they appear in a trace: Q Kᵀ (L·S·E) + A V (L·S·Ev) per batch and head."""
    batch, heads, length, source, e_qk = 2, 3, 7, 11, 8

    class Kernel(nn.Module):
        def forward(self, q):
            out = op(q, torch.ones(batch, heads, source, e_qk), torch.ones(batch, heads, source, e_v))
            return out[0] if isinstance(out, tuple) else out

    with torch.no_grad():
        count = count_compute(Kernel(), torch.randn(batch, heads, length, e_qk))
    assert count.macs == batch * heads * length * source * (e_qk + e_v)
    assert not count.uncounted_calls


def test_fused_encoder_layer_op_counted():
    """``aten::_transformer_encoder_layer_fwd`` (the layer's own fast path, which fvcore's hooks disable)
    called directly: self-attention plus feed-forward."""
    layer = nn.TransformerEncoderLayer(WIDTH, HEADS, 128, dropout=0.0, batch_first=True).eval()

    class Fused(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = layer

        def forward(self, x):
            a, n1, n2 = self.layer.self_attn, self.layer.norm1, self.layer.norm2
            return torch._transformer_encoder_layer_fwd(
                x, WIDTH, HEADS, a.in_proj_weight, a.in_proj_bias, a.out_proj.weight, a.out_proj.bias,
                False, False, n1.eps, n1.weight, n1.bias, n2.weight, n2.bias,
                self.layer.linear1.weight, self.layer.linear1.bias, self.layer.linear2.weight,
                self.layer.linear2.bias, None)

    x = torch.randn(1, TOKENS, WIDTH)
    model = Fused().eval()
    with torch.no_grad():
        assert torch.allclose(model(x), layer(x), atol=1e-5)
        count = count_compute(model, x)
    assert count.macs == _encoder_layer_matmul_macs(d_ff=128)
    assert not count.uncounted_calls
