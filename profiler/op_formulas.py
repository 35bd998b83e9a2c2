"""The table of per-op cost formulas for ops fvcore counts as zero, extended by decorator.

Modelled on ``torch.utils.flop_counter.register_flop_formula``: one table (:data:`OP_FORMULAS`), keyed
by the jit op kind (``aten::add_``), each entry a formula, a note and what its count is added to
(``"macs"`` or ``"other_ops"``). :mod:`profiler.costs` hands the table to fvcore as extra op handles;
the formulas themselves live beside the ops they count (:mod:`profiler.costs` for elementwise ops and
pooling, :mod:`profiler.attention_formulas` for attention). See :mod:`profiler.costs` for how to add one.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import Any, Callable, Iterable, Sequence

#: ``formula(inputs, outputs) -> count`` on the jit values of one traced node (fvcore's handle signature).
OpFormula = Callable[[list[Any], list[Any]], int]

#: What a formula's count is added to.
COUNTS_AS = ("macs", "other_ops")

@dataclass(frozen=True)
class FormulaEntry:
    op: str
    formula: OpFormula
    note: str
    counts_as: str = "other_ops"


class OpFormulaTable:
    """jit op kind (``aten::add_``) → formula for an op fvcore counts as zero; extended by decorator."""

    def __init__(self) -> None:
        self._entries: dict[str, FormulaEntry] = {}

    def register(self, *ops: str, note: str, counts_as: str = "other_ops") -> Callable[[OpFormula], OpFormula]:
        """Decorator: ``@register_op_formula("aten::op", note=..., counts_as="macs" | "other_ops")``."""
        if counts_as not in COUNTS_AS:
            raise ValueError(f"counts_as must be one of {COUNTS_AS}, got {counts_as!r}")
        if not ops:
            raise ValueError("register_op_formula needs at least one op name such as 'aten::gelu'")

        def decorate(formula: OpFormula) -> OpFormula:
            for op in ops:
                self._entries[op] = FormulaEntry(op, formula, note, counts_as)
            return formula

        return decorate

    def entries(self) -> Iterable[FormulaEntry]:
        return self._entries.values()

    def get(self, op: str) -> FormulaEntry:
        return self._entries[op]

    def note(self, op: str) -> str:
        return self._entries[op].note


OP_FORMULAS = OpFormulaTable()
register_op_formula = OP_FORMULAS.register


def value_shape(value: Any) -> list[int]:
    """Sizes of a traced tensor value (``[]`` when the trace did not record them)."""
    return value.type().sizes() if value.isCompleteTensor() else []


def output_numel(outputs: Sequence[Any]) -> int:
    """Elements of the first output of a traced node."""
    return prod(value_shape(outputs[0]))


def int_list(value: Any) -> list[int]:
    """An ``int[]`` argument of a traced node (a ``prim::ListConstruct`` of constants, or a constant)."""
    node = value.node()
    if node.kind() == "prim::ListConstruct":
        return [int(v.toIValue()) for v in node.inputs()]
    constant = value.toIValue()
    return list(constant) if isinstance(constant, (list, tuple)) else [int(constant)]
