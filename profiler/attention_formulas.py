"""MAC formulas for attention: the ops ``nn.MultiheadAttention``, ``nn.TransformerEncoderLayer`` and
``F.scaled_dot_product_attention`` lower to, which fvcore counts as zero.

With sequence lengths ``L`` (queries) and ``S`` (keys/values), model width ``E`` (all heads together,
``E = h · d_head``), ``h`` heads and batch ``B`` (batch 1 in the tables):

- scaled dot-product attention on ``q (…, L, E_qk)``, ``k (…, S, E_qk)``, ``v (…, S, E_v)``:
  ``Q Kᵀ`` is ``L · S · E_qk`` MACs per leading index (per head) and attention × V ``L · S · E_v``;
- fused multi-head attention (``aten::_native_multi_head_attention``, the eval/no-grad fast path of
  ``nn.MultiheadAttention``): q projection ``L · E²``, k and v projections ``2 · S · E²``, ``Q Kᵀ`` and
  attention × V summed over heads ``2 · L · S · E``, output projection ``L · E²``;
- fused encoder layer (``aten::_transformer_encoder_layer_fwd``): the self-attention above with
  ``S = L`` (``4 · L · E² + 2 · L² · E``) plus the feed-forward ``2 · L · E · d_ff``.

The projections and matrix products count as MACs, as fvcore counts ``linear`` and ``bmm``. The
softmax, the ``1/√d_head`` scaling and (in the fused encoder layer) the layer norms happen inside the
kernel and are not counted; a stand-alone ``aten::softmax`` (``need_weights=True``) counts as other ops.
A causal mask is not discounted (the kernels compute, or at least may compute, the full ``L × S``).
"""

from __future__ import annotations

from math import prod
from typing import Any

from profiler.op_formulas import output_numel, register_op_formula, value_shape

#: Every aten op that computes softmax(Q Kᵀ / √d) V on ``(query, key, value, …)`` in that order.
SDPA_OPS = (
    "aten::scaled_dot_product_attention",
    "aten::_scaled_dot_product_attention_math",
    "aten::_scaled_dot_product_flash_attention",
    "aten::_scaled_dot_product_flash_attention_for_cpu",
    "aten::_scaled_dot_product_efficient_attention",
    "aten::_scaled_dot_product_cudnn_attention",
    "aten::_scaled_dot_product_fused_attention_overrideable",
)


def _shape(value: Any, rank: int, what: str) -> list[int]:
    """The traced shape of ``value``, checked to have at least ``rank`` dimensions."""
    shape = value_shape(value)
    if len(shape) < rank:
        raise ValueError(f"attention formula: the trace has no shape of rank >= {rank} for {what} ({shape})")
    return shape


def sdpa_macs(query: list[int], key: list[int], value: list[int]) -> int:
    """``Q Kᵀ`` + attention × V: ``prod(batch, heads) · L · S · (E_qk + E_v)``."""
    *batch, length, e_qk = query
    source, e_v = key[-2], value[-1]
    return prod(batch) * length * source * (e_qk + e_v)


def multi_head_attention_macs(batch: int, length: int, source: int, width: int) -> int:
    """Projections and both attention products of one multi-head attention (``S`` keys, width ``E``)."""
    projections = (length + 2 * source + length) * width * width   # q, k, v, out
    products = 2 * length * source * width                        # Q Kᵀ and A V, summed over heads
    return batch * (projections + products)


@register_op_formula(*SDPA_OPS, counts_as="macs",
                     note="Q K^T and attention x V: batch*heads*L*S*(E_qk+E_v); softmax/scaling not counted")
def _sdpa(inputs: list[Any], outputs: list[Any]) -> int:
    return sdpa_macs(*(_shape(v, 2, name) for v, name in zip(inputs[:3], ("query", "key", "value"))))


def _batch_length_width(value: Any, what: str) -> tuple[int, int, int]:
    shape = _shape(value, 2, what)
    return (prod(shape[:-2]), shape[-2], shape[-1])


@register_op_formula("aten::_native_multi_head_attention", counts_as="macs",
                     note="fused nn.MultiheadAttention: q,k,v,out projections (2LE^2+2SE^2) + Q K^T and "
                          "attention x V (2LSE); softmax/scaling not counted")
def _native_mha(inputs: list[Any], outputs: list[Any]) -> int:
    batch, length, width = _batch_length_width(inputs[0], "query")
    source = _shape(inputs[1], 2, "key")[-2]
    return multi_head_attention_macs(batch, length, source, width)


@register_op_formula("aten::_transformer_encoder_layer_fwd", counts_as="macs",
                     note="fused nn.TransformerEncoderLayer: self-attention (4LE^2+2L^2E) + feed-forward "
                          "(2LE*d_ff); softmax, layer norms, activation not counted")
def _encoder_layer(inputs: list[Any], outputs: list[Any]) -> int:
    batch, length, width = _batch_length_width(inputs[0], "src")
    d_ff = _shape(inputs[14], 2, "ffn_weight_1")[0]
    return multi_head_attention_macs(batch, length, length, width) + batch * 2 * length * width * d_ff


@register_op_formula("aten::baddbmm", counts_as="macs", note="beta*M + batch1 @ batch2: B*n*m*p")
def _baddbmm(inputs: list[Any], outputs: list[Any]) -> int:
    batch, n, m = _shape(inputs[1], 3, "batch1")[-3:]
    return batch * n * m * _shape(inputs[2], 3, "batch2")[-1]


@register_op_formula("aten::softmax", "aten::_softmax", note="3 ops per element (exp, sum, divide)")
def _softmax(inputs: list[Any], outputs: list[Any]) -> int:
    return 3 * output_numel(outputs)
