"""Per-unit costs: compute ω_l (MACs, FLOPs), parameter volume S_l and output volume D^out_l (eq. 1–2).

Compute is counted by fvcore's :class:`~fvcore.nn.FlopCountAnalysis`, run on each unit with the
tensor that really reaches it. fvcore counts one fused multiply-add as one "flop": we call that a
MAC, and FLOPs = 2 × MACs. Ops fvcore leaves at zero are not hidden: those with a formula in
:data:`OTHER_OPS` (residual add, ReLU, max-pool, ...) are counted as *other ops* (comparisons and
additions, kept apart from MACs); the rest are reported as uncounted, by op and occurrence.

Extend the formula table the way ``torch.utils.flop_counter.register_flop_formula`` does::

    @register_op_formula("aten::hardswish", note="3 ops per element")
    def _hardswish(inputs, outputs):
        return 3 * output_numel(outputs)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from math import prod
from typing import Any, Callable, Iterable, Sequence

import warnings

import torch
from torch import nn

with warnings.catch_warnings():  # fvcore's focal_loss calls torch.jit.script at import: a FutureWarning
    warnings.simplefilter("ignore", FutureWarning)
    from fvcore.nn import FlopCountAnalysis

#: ``formula(inputs, outputs) -> ops`` on the jit values of one traced node (fvcore's handle signature).
OpFormula = Callable[[list[Any], list[Any]], int]

COMPUTE_CONVENTION = (
    "macs = multiply-accumulates counted by fvcore FlopCountAnalysis (fvcore calls one fused multiply-add "
    "one 'flop'; it also counts batch-norm at 1 per element and adaptive average pooling at 1 per input "
    "element); flops = 2 x macs. other_ops = operations fvcore leaves at zero, counted by splitpriv's "
    "formulas and NOT included in macs or flops: elementwise add/sub/mul 1 per output element, ReLU 1 "
    "comparison per element, max pooling kh*kw comparisons per output element. params = learnable "
    "parameters; param_bytes = bytes of parameters plus floating-point buffers (batch-norm running "
    "statistics), i.e. the state the device must download (D^U); shared tensors counted once. "
    "output_bytes = element bytes x elements of the tensor that crosses the cut (eq. 1-2), batch 1."
)

_OTHER_KEY = "splitpriv-other:"
_CALLS_KEY = "splitpriv-calls:"


@dataclass(frozen=True)
class FormulaEntry:
    op: str
    formula: OpFormula
    note: str


class OpFormulaTable:
    """jit op kind (``aten::add_``) → formula for ops fvcore counts as zero; extended by decorator."""

    def __init__(self) -> None:
        self._entries: dict[str, FormulaEntry] = {}

    def register(self, *ops: str, note: str) -> Callable[[OpFormula], OpFormula]:
        def decorate(formula: OpFormula) -> OpFormula:
            for op in ops:
                self._entries[op] = FormulaEntry(op, formula, note)
            return formula

        return decorate

    def entries(self) -> Iterable[FormulaEntry]:
        return self._entries.values()

    def note(self, op: str) -> str:
        return self._entries[op].note


OTHER_OPS = OpFormulaTable()
register_op_formula = OTHER_OPS.register


def _sizes(value: Any) -> list[int]:
    return value.type().sizes() if value.isCompleteTensor() else []


def output_numel(outputs: Sequence[Any]) -> int:
    """Elements of the first output of a traced node."""
    return prod(_sizes(outputs[0]))


def _int_list(value: Any) -> list[int]:
    """An ``int[]`` argument of a traced node (a ``prim::ListConstruct`` of constants, or a constant)."""
    node = value.node()
    if node.kind() == "prim::ListConstruct":
        return [int(v.toIValue()) for v in node.inputs()]
    constant = value.toIValue()
    return list(constant) if isinstance(constant, (list, tuple)) else [int(constant)]


@register_op_formula("aten::add", "aten::add_", "aten::sub", "aten::sub_", "aten::mul", "aten::mul_",
                     note="1 op per output element")
def _elementwise(inputs: list[Any], outputs: list[Any]) -> int:
    return output_numel(outputs)


@register_op_formula("aten::relu", "aten::relu_", note="1 comparison per element")
def _relu(inputs: list[Any], outputs: list[Any]) -> int:
    return output_numel(outputs)


@register_op_formula("aten::max_pool1d", "aten::max_pool2d", "aten::max_pool3d",
                     note="kernel-area comparisons per output element")
def _max_pool(inputs: list[Any], outputs: list[Any]) -> int:
    return prod(_int_list(inputs[1])) * output_numel(outputs)


@dataclass
class ComputeCount:
    """What fvcore and the formula table found in one unit."""

    macs: int
    macs_by_op: Counter = field(default_factory=Counter)    # fvcore op name (conv, addmm, ...) -> MACs
    other_ops: Counter = field(default_factory=Counter)     # op kind -> ops by formula
    other_calls: Counter = field(default_factory=Counter)   # op kind -> occurrences
    uncounted_calls: Counter = field(default_factory=Counter)  # op kind -> occurrences, cost unknown


def _handle(entry: FormulaEntry) -> Callable[[list[Any], list[Any]], Counter]:
    """An fvcore op handle: the formula's ops under one key, and one call under another."""

    def handle(inputs: list[Any], outputs: list[Any]) -> Counter:
        return Counter({_OTHER_KEY + entry.op: int(entry.formula(inputs, outputs)), _CALLS_KEY + entry.op: 1})

    return handle


def _split_keys(by_op: Counter) -> ComputeCount:
    macs = Counter({k: v for k, v in by_op.items() if not k.startswith((_OTHER_KEY, _CALLS_KEY))})
    other = Counter({k[len(_OTHER_KEY):]: v for k, v in by_op.items() if k.startswith(_OTHER_KEY)})
    calls = Counter({k[len(_CALLS_KEY):]: v for k, v in by_op.items() if k.startswith(_CALLS_KEY)})
    return ComputeCount(int(sum(macs.values())), macs, other, calls)


def analysis_with_formulas(module: nn.Module, x: torch.Tensor) -> FlopCountAnalysis:
    """fvcore's analysis of ``module(x)``, quiet, with :data:`OTHER_OPS` installed as extra handles."""
    analysis = FlopCountAnalysis(module, (x,))
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
    analysis.set_op_handle(**{e.op: _handle(e) for e in OTHER_OPS.entries()})
    return analysis


def count_compute(module: nn.Module, x: torch.Tensor) -> ComputeCount:
    """MACs of ``module(x)`` by fvcore, plus other ops by :data:`OTHER_OPS`, plus what stays uncounted."""
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
    """The table's ``uncounted`` list: every op fvcore left at zero, how it was handled, and its share."""
    total_macs = sum(c.macs for c in counts) or 1
    other_ops, other_calls, missing = Counter(), Counter(), Counter()
    for c in counts:
        other_ops.update(c.other_ops)
        other_calls.update(c.other_calls)
        missing.update(c.uncounted_calls)
    report = [{"op": op, "count": other_calls[op], "ops": other_ops[op],
               "share_of_macs": other_ops[op] / total_macs,
               "note": f"not counted by fvcore; counted by splitpriv as other_ops ({OTHER_OPS.note(op)}), "
                       "not included in macs/flops"}
              for op in sorted(other_calls)]
    report += [{"op": op, "count": n, "ops": None, "share_of_macs": None,
                "note": "not counted by fvcore nor by a splitpriv formula: its cost is missing from the table "
                        "(add one with profiler.costs.register_op_formula)"}
               for op, n in sorted(missing.items())]
    return report
