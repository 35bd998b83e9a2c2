"""Per-unit costs: compute ω_l (MACs, FLOPs), parameter volume S_l and output volume D^out_l (eq. 1–2).

Compute is counted by fvcore's :class:`~fvcore.nn.FlopCountAnalysis`, run on each unit with the
tensor that really reaches it. fvcore counts one fused multiply-add as one "flop": we call that a
MAC, and FLOPs = 2 × MACs. Ops fvcore leaves at zero are not hidden: those with a formula in
:data:`OP_FORMULAS` are counted, as MACs or as *other ops* (comparisons and additions of ReLU,
pooling, residual add, kept apart from MACs); ops that do no arithmetic at inference
(:data:`FREE_OPS`: dropout, random fills) are skipped; the rest are reported as uncounted.

Teach the profiler an op the way ``torch.utils.flop_counter.register_flop_formula`` does::

    from profiler.costs import register_op_formula, output_numel, value_shape

    @register_op_formula("aten::hardswish", note="3 ops per element")            # other ops
    def _hardswish(inputs, outputs):
        return 3 * output_numel(outputs)

    @register_op_formula("aten::scaled_dot_product_attention", counts_as="macs",  # joins MACs/FLOPs
                         note="QK^T and attention x V")
    def _sdpa(inputs, outputs):
        (*batch, L, E), (*_, S, _), (*_, Ev) = (value_shape(v) for v in inputs[:3])
        return math.prod(batch) * L * S * (E + Ev)

(attention is built in that way: see :mod:`profiler.attention_formulas`; the table itself lives in
:mod:`profiler.op_formulas`.)

A formula receives the traced node's ``inputs`` and ``outputs``: lists of TorchScript values
(``torch._C.Value``) in the order of the op's schema (``aten::max_pool2d(self, kernel_size, stride,
...)``). Read a tensor's shape with :func:`value_shape`, an ``int[]`` argument with :func:`int_list`,
any other constant with ``value.toIValue()``; return a count for one call of the op with batch 1.
``counts_as="macs"`` adds the count to the unit's MACs (and FLOPs = 2 × MACs, which the environment
uses); ``"other_ops"`` (the default) keeps it apart. Register before profiling (e.g. in the module
that defines the model); a later registration for the same op replaces the earlier one.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass, field
from math import prod
from typing import Any, Callable, Sequence

import torch
from torch import nn

with warnings.catch_warnings():  # fvcore's focal_loss calls torch.jit.script at import: a FutureWarning
    warnings.simplefilter("ignore", FutureWarning)
    from fvcore.nn import FlopCountAnalysis

from profiler import attention_formulas  # noqa: F401  (registers the attention formulas on import)
from profiler.op_formulas import (COUNTS_AS, OP_FORMULAS, FormulaEntry, OpFormula, OpFormulaTable,  # noqa: F401
                                  int_list, output_numel, register_op_formula, value_shape)

COMPUTE_CONVENTION = (
    "macs = multiply-accumulates counted by fvcore FlopCountAnalysis (fvcore calls one fused multiply-add "
    "one 'flop'; it also counts batch-norm at inference at 2 per element with an affine transform, 1 "
    "without, layer norm at 5 per element with an affine transform, 4 without, and adaptive average "
    "pooling at 1 per input element), plus ops a registered splitpriv "
    "formula counts as MACs (listed in 'uncounted'); flops = 2 x macs. other_ops = operations fvcore "
    "leaves at zero, counted by splitpriv's formulas and NOT included in macs or flops: elementwise "
    "add/sub/mul/div 1 per output element, ReLU 1 comparison per element, max and average pooling kh*kw "
    "comparisons or additions per output element, softmax 3 per element (exp, sum, divide). Attention "
    "(scaled_dot_product_attention and its kernels, the fused multi-head-attention and encoder-layer "
    "ops) counts as MACs: the q/k/v and output projections, Q K^T and attention x V, the feed-forward "
    "of a fused encoder layer; the softmax, scaling and layer norms inside a fused kernel are not "
    "counted. Dropout (the identity at inference), views such as unflatten and random fills are free. "
    "params = learnable parameters; param_bytes = bytes of parameters plus floating-point "
    "buffers (batch-norm running statistics), i.e. the state the device must download (D^U); shared "
    "tensors counted once. output_bytes = element bytes x elements of the tensor that crosses the cut "
    "(eq. 1-2), batch 1."
)

#: Ops that do no arithmetic on the data at inference: dropout is the identity in eval mode, random
#: fills write values without reading the input, unflatten is a view (fvcore ignores the other views).
#: Neither counted nor reported as uncounted.
FREE_OPS = frozenset({
    "aten::dropout", "aten::dropout_", "aten::feature_dropout", "aten::feature_dropout_",
    "aten::alpha_dropout", "aten::alpha_dropout_", "aten::feature_alpha_dropout", "aten::feature_alpha_dropout_",
    "aten::uniform_", "aten::normal_", "aten::bernoulli_", "aten::rand", "aten::randn", "aten::rand_like",
    "aten::randn_like", "aten::unflatten",
})

_OTHER_KEY = "splitpriv-other:"
_MACS_KEY = "splitpriv-macs:"
_CALLS_KEY = "splitpriv-calls:"


@register_op_formula("aten::add", "aten::add_", "aten::sub", "aten::sub_", "aten::mul", "aten::mul_",
                     "aten::div", "aten::div_", note="1 op per output element")
def _elementwise(inputs: list[Any], outputs: list[Any]) -> int:
    return output_numel(outputs)


@register_op_formula("aten::relu", "aten::relu_", note="1 comparison per element")
def _relu(inputs: list[Any], outputs: list[Any]) -> int:
    return output_numel(outputs)


@register_op_formula("aten::max_pool1d", "aten::max_pool2d", "aten::max_pool3d",
                     note="kernel-area comparisons per output element")
def _max_pool(inputs: list[Any], outputs: list[Any]) -> int:
    return prod(int_list(inputs[1])) * output_numel(outputs)


@register_op_formula("aten::avg_pool1d", "aten::avg_pool2d", "aten::avg_pool3d",
                     note="kernel-area additions per output element")
def _avg_pool(inputs: list[Any], outputs: list[Any]) -> int:
    return prod(int_list(inputs[1])) * output_numel(outputs)


@dataclass
class ComputeCount:
    """What fvcore and the formula table found in one unit."""

    macs: int
    macs_by_op: Counter = field(default_factory=Counter)    # fvcore op name (conv, addmm, ...) -> MACs
    other_ops: Counter = field(default_factory=Counter)     # op kind -> ops by an other-ops formula
    other_calls: Counter = field(default_factory=Counter)   # op kind -> occurrences of any formula's op
    uncounted_calls: Counter = field(default_factory=Counter)  # op kind -> occurrences, cost unknown


def _handle(entry: FormulaEntry) -> Callable[[list[Any], list[Any]], Counter]:
    """An fvcore op handle: the formula's count under a key saying what it counts as, and one call."""
    key = (_MACS_KEY if entry.counts_as == "macs" else _OTHER_KEY) + entry.op

    def handle(inputs: list[Any], outputs: list[Any]) -> Counter:
        return Counter({key: int(entry.formula(inputs, outputs)), _CALLS_KEY + entry.op: 1})

    return handle


def _strip(by_op: Counter, prefix: str) -> Counter:
    return Counter({k[len(prefix):]: v for k, v in by_op.items() if k.startswith(prefix)})


def _split_keys(by_op: Counter) -> ComputeCount:
    """fvcore's per-op counts → MACs (fvcore's own and MAC formulas'), other ops and formula calls."""
    macs = Counter({k: v for k, v in by_op.items() if not k.startswith((_OTHER_KEY, _MACS_KEY, _CALLS_KEY))})
    macs.update(_strip(by_op, _MACS_KEY))
    calls = _strip(by_op, _CALLS_KEY)
    return ComputeCount(int(sum(macs.values())), macs, _strip(by_op, _OTHER_KEY), calls)


def analysis_with_formulas(module: nn.Module, x: torch.Tensor) -> FlopCountAnalysis:
    """fvcore's analysis of ``module(x)``, quiet, with :data:`OP_FORMULAS` as extra handles, free ops ignored."""
    analysis = FlopCountAnalysis(module, (x,))
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
    analysis.set_op_handle(**{op: None for op in FREE_OPS})  # None: ignored, like fvcore's own list
    analysis.set_op_handle(**{e.op: _handle(e) for e in OP_FORMULAS.entries()})
    return analysis


def count_compute(module: nn.Module, x: torch.Tensor) -> ComputeCount:
    """MACs of ``module(x)`` by fvcore and MAC formulas, other ops by :data:`OP_FORMULAS`, and what stays uncounted."""
    analysis = analysis_with_formulas(module, x)
    count = _split_keys(analysis.by_operator())
    count.uncounted_calls = Counter(analysis.unsupported_ops())
    return count


def count_units(modules: Sequence[nn.Module], x: torch.Tensor) -> tuple[list[ComputeCount], list[torch.Tensor]]:
    """Per-unit counts and the cut tensors ``[x, out_1, ..., out_L]`` from ONE traced forward pass.

    The units run as one chain under a single fvcore analysis; fvcore attributes every op to the unit
    whose ``__call__`` ran it (``by_operator("<l-1>")``), so each unit is counted on its real input,
    and forward hooks keep the tensor each unit hands to the next (not copied: every unit after the first
    starts with its computational op, which never writes its input in place).
    """
    chain = nn.Sequential(*modules)
    cuts: list[torch.Tensor] = [x]
    hooks = [m.register_forward_hook(lambda _m, _in, out: cuts.append(out.detach())) for m in chain]
    try:
        with torch.no_grad():
            analysis = analysis_with_formulas(chain, x.clone())
            analysis.by_operator()  # runs the trace (and the hooks) once
    finally:
        for hook in hooks:
            hook.remove()
    counts = []
    for i in range(len(chain)):
        count = _split_keys(analysis.by_operator(str(i)))
        count.uncounted_calls = Counter(analysis.unsupported_ops(str(i)))
        counts.append(count)
    return counts, cuts


@dataclass(frozen=True)
class StateSize:
    params: int
    param_bytes: int


def state_sizes(modules: Sequence[nn.Module]) -> list[StateSize]:
    """S_l per unit: learnable parameters, and bytes of parameters + floating buffers; shared once."""
    seen: set[int] = set()
    sizes = []
    for module in modules:
        params = nbytes = 0
        for p in module.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                params += p.numel()
                nbytes += p.numel() * p.element_size()
        for b in module.buffers():
            if id(b) not in seen and b.is_floating_point():
                seen.add(id(b))
                nbytes += b.numel() * b.element_size()
        sizes.append(StateSize(params, nbytes))
    return sizes


def tensor_bytes(t: torch.Tensor) -> int:
    """D^out (eq. 1–2): element bytes × elements of the tensor as it crosses the cut."""
    return t.element_size() * t.numel()


def uncounted_report(counts: Sequence[ComputeCount]) -> list[dict[str, Any]]:
    """The table's ``uncounted`` list: every op fvcore left at zero, how it was handled, and its share.

    ``counted_as`` says where a formula's count went: ``"macs"`` (included in macs/flops),
    ``"other_ops"`` (kept apart) or ``None`` (no formula: the op's cost is missing from the table).
    """
    total_macs = sum(c.macs for c in counts) or 1
    macs_by_op, other_ops, calls, missing = Counter(), Counter(), Counter(), Counter()
    for c in counts:
        macs_by_op.update(c.macs_by_op)
        other_ops.update(c.other_ops)
        calls.update(c.other_calls)
        missing.update(c.uncounted_calls)
    report = []
    for op in sorted(calls):
        entry = OP_FORMULAS.get(op)
        ops = macs_by_op[op] if entry.counts_as == "macs" else other_ops[op]
        where = ("included in macs/flops" if entry.counts_as == "macs"
                 else "not included in macs/flops")
        report.append({"op": op, "count": calls[op], "ops": ops, "share_of_macs": ops / total_macs,
                       "counted_as": entry.counts_as,
                       "note": f"not counted by fvcore; counted by splitpriv as {entry.counts_as} "
                               f"({entry.note}), {where}"})
    report += [{"op": op, "count": n, "ops": None, "share_of_macs": None, "counted_as": None,
                "note": "not counted by fvcore nor by a splitpriv formula: its cost is missing from the table "
                        "(add one with profiler.costs.register_op_formula)"}
               for op, n in sorted(missing.items())]
    return report
