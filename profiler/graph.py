"""Valid split points of a model, found from its traced graph (torch.fx); no per-architecture tables.

A *cut* is a place in the topologically ordered graph where exactly one tensor is live: everything
before it can run on the device, everything after it on the server, and only that tensor crosses.
A *unit* is one computational layer (conv, linear, matmul, attention, a transformer layer, a wrapped
function applying a weight matrix) together with the non-computational ops that follow it up to the
last valid cut before the next computational layer (BN, activation, pooling, flatten, dropout, residual
add, a final norm and class-token selection). Inside a residual block two tensors are live, so a whole
block becomes one unit by itself; a transformer block is two residual halves (attention, MLP), so it
is two units and its boundary a cut. ``nn.TransformerEncoder`` is unrolled into its layers
(:class:`SplitTracer`), so there is a cut between every pair of layers.

Split point ``z`` (paper: ``z_{i,k}``) runs units ``1..z`` on the device and ``z+1..L`` on the server;
``z = 0`` sends the raw input, ``z = L`` runs everything locally.
"""

from __future__ import annotations

import operator
import os
import traceback
from dataclasses import dataclass
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import fx, nn

from common.errors import UserInputError


#: Module types and functions that make a node *computational* (they open a new unit). torch.fx keeps
#: torch.nn's modules as leaves, so attention and transformer layers are single nodes: computational.
COMPUTATIONAL_MODULES: tuple[type[nn.Module], ...] = (
    nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d,
    nn.Linear, nn.Bilinear, nn.MultiheadAttention, nn.TransformerEncoderLayer, nn.TransformerDecoderLayer,
    nn.TransformerEncoder, nn.TransformerDecoder, nn.Transformer,
)
COMPUTATIONAL_FUNCTIONS: tuple[Callable, ...] = (
    F.conv1d, F.conv2d, F.conv3d, F.linear, torch.conv1d, torch.conv2d, torch.conv3d,
    torch.matmul, torch.mm, torch.bmm, operator.matmul, F.scaled_dot_product_attention,
)

#: Attribute a user sets on an ``nn.Sequential`` to make each child one unit (no tracing).
EXPLICIT_UNITS_ATTR = "splitpriv_explicit_units"


@dataclass(frozen=True)
class Unit:
    """One split unit: ``module`` maps the tensor crossing cut ``index-1`` to the one crossing cut ``index``."""

    index: int
    name: str
    modules: tuple[str, ...]
    module: nn.Module


class SplitModel(nn.Module):
    """A model re-expressed as the chain of its units; ``SplitModel(x) == model(x)``."""

    def __init__(self, units: Iterable[Unit]):
        super().__init__()
        self.unit_info: list[Unit] = list(units)
        self.blocks = nn.ModuleList(u.module for u in self.unit_info)

    @property
    def units(self) -> list[Unit]:
        return self.unit_info

    @property
    def num_units(self) -> int:
        """L: the number of units, so split points are ``0..L``."""
        return len(self.unit_info)

    def _check(self, z: int) -> None:
        if not 0 <= z <= self.num_units:
            raise UserInputError(f"split point {z} out of range 0..{self.num_units}")

    def head(self, z: int) -> nn.Sequential:
        """Device side of split ``z``: units ``1..z`` (identity for ``z = 0``)."""
        self._check(z)
        return nn.Sequential(*self.blocks[:z])

    def tail(self, z: int) -> nn.Sequential:
        """Server side of split ``z``: units ``z+1..L`` (identity for ``z = L``)."""
        self._check(z)
        return nn.Sequential(*self.blocks[z:])

    def cut_tensors(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``[x, out_1, ..., out_L]``: the tensor that crosses every split point, from one forward pass."""
        outs = [x]
        for block in self.blocks:
            outs.append(block(outs[-1]))
        return outs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


def _is_weight_matrix(arg: object) -> bool:
    """``arg`` reads a 2-D parameter of the traced model (the weight of a linear map)."""
    if not isinstance(arg, fx.Node) or arg.op != "get_attr":
        return False
    value: object = arg.graph.owning_module
    for attr in str(arg.target).split("."):
        value = getattr(value, attr, None)
    return isinstance(value, nn.Parameter) and value.dim() == 2


def _is_computational(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_module":
        return isinstance(modules[node.target], COMPUTATIONAL_MODULES)
    if node.op == "call_function":  # a listed function, or one fx keeps whole (torch.fx.wrap) that applies
        args = (*node.args, *node.kwargs.values())   # a weight matrix to data (swin's shifted_window_attention)
        return node.target in COMPUTATIONAL_FUNCTIONS or (
            any(_is_weight_matrix(a) for a in args)
            and any(isinstance(a, fx.Node) and a.op != "get_attr" for a in args))
    return node.op == "call_method" and node.target == "matmul"


def _is_plain_call(args: tuple, kwargs: dict) -> bool:
    """A call on one tensor with every optional argument (masks, ``is_causal``) left at its default."""
    return len(args) >= 1 and all(v is None or v is False for v in (*args[1:], *kwargs.values()))


class SplitTracer(fx.Tracer):
    """torch.fx's tracer, with an ``nn.TransformerEncoder`` called without masks unrolled into its layers.

    fx keeps torch.nn's modules as leaves, and ``TransformerEncoder.forward`` branches on its input (the
    nested-tensor fast path), so it would be one node and no cut could fall between its layers. Without
    masks it is exactly ``norm(layer_N(…layer_1(src)))``: each layer becomes one (computational) node, and
    the single tensor between two layers a valid cut. A layer's own forward also branches on its input,
    so a layer stays one unit.
    """

    def call_module(self, m: nn.Module, forward: Callable, args: tuple, kwargs: dict):
        if isinstance(m, nn.TransformerEncoder) and _is_plain_call(args, kwargs):
            out = args[0]
            for layer in m.layers:
                out = self.call_module(layer, layer.forward, (out,), {})
            return out if m.norm is None else self.call_module(m.norm, m.norm.forward, (out,), {})
        return super().call_module(m, forward, args, kwargs)


def _trace(model: nn.Module) -> fx.GraphModule:
    try:
        tracer = SplitTracer()
        graph = tracer.trace(model)
        return fx.GraphModule(tracer.root, graph, type(model).__name__)
    except Exception as exc:  # fx raises many types (TraceError, TypeError, NotImplementedError, ...)
        raise UserInputError(_untraceable_message(model, exc)) from None


def _untraceable_message(model: nn.Module, exc: Exception) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if f"{os.sep}torch{os.sep}" not in f.filename and f.filename != __file__]
    where = f" at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno} `{frames[-1].line}`" if frames else ""
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return (f"{type(model).__name__} is not traceable by torch.fx{where}: {first_line}. "
            f"Remove the data-dependent step, or give explicit units: return an nn.Sequential of unit "
            f"modules with `{EXPLICIT_UNITS_ATTR} = True`")


def _last_uses(nodes: list[fx.Node]) -> list[int]:
    """For each node, the position of its last user (-1 if unused)."""
    pos = {n: i for i, n in enumerate(nodes)}
    return [max((pos[u] for u in n.users), default=-1) for n in nodes]


def _live_after(nodes: list[fx.Node], last_use: list[int], q: int) -> list[fx.Node]:
    """Tensor values defined at or before position ``q`` and still needed after it (weights excluded)."""
    return [nodes[i] for i in range(q + 1)
            if last_use[i] > q and nodes[i].op not in ("get_attr", "output")]


def _valid_cuts(gm: fx.GraphModule) -> dict[int, fx.Node]:
    """Positions ``q`` after which exactly one value is live, mapped to that value."""
    nodes = list(gm.graph.nodes)
    last_use = _last_uses(nodes)
    cuts = {}
    for q in range(len(nodes) - 1):
        live = _live_after(nodes, last_use, q)
        if len(live) == 1:
            cuts[q] = live[0]
    return cuts


def _unit_boundaries(nodes: list[fx.Node], comp: list[int], cuts: dict[int, fx.Node]) -> list[int]:
    """Cut positions that close each unit: the latest valid cut before each next computational node."""
    bounds = []
    for prev, nxt in zip(comp, comp[1:]):
        candidates = [q for q in cuts if prev <= q < nxt]
        if candidates:
            bounds.append(max(candidates))
    return bounds


def _segment_module(gm: fx.GraphModule, nodes: list[fx.Node], start: int, stop: int,
                    inp: fx.Node, out: fx.Node) -> fx.GraphModule:
    """A GraphModule of nodes ``start..stop`` reading ``inp`` and returning ``out`` (weights shared)."""
    graph = fx.Graph()
    env: dict[fx.Node, fx.Node] = {inp: graph.placeholder("x")}

    def lookup(n: fx.Node) -> fx.Node:
        if n not in env:  # a weight read before this segment: copy the get_attr here
            if n.op != "get_attr":
                raise AssertionError(f"value {n} crosses a cut that was judged valid")
            env[n] = graph.node_copy(n, lookup)
        return env[n]

    for n in nodes[start:stop + 1]:
        if n in env or n.op in ("placeholder", "output"):
            continue
        env[n] = graph.node_copy(n, lookup)
    graph.output(lookup(out))
    segment = fx.GraphModule(gm, graph)
    segment.graph.eliminate_dead_code()
    segment.recompile()
    return segment


def _label(node: fx.Node) -> str:
    """A computational node's name: its module, or for a wrapped function applying a weight matrix the
    module that called it (``features.1.0.attn``); a listed function keeps its node name."""
    if node.op == "call_module":
        return str(node.target)
    stack = node.meta.get("nn_module_stack")
    if node.op == "call_function" and node.target not in COMPUTATIONAL_FUNCTIONS and stack:
        return str(next(reversed(stack)))
    return node.name


def _unit_name(segment: list[fx.Node], modules: dict[str, nn.Module]) -> tuple[str, tuple[str, ...]]:
    names = tuple(str(n.target) for n in segment if n.op == "call_module")
    comp = [_label(n) for n in segment if _is_computational(n, modules)]
    if len(comp) > 1:
        prefix = os.path.commonprefix([c.split(".") for c in comp])
        if prefix:
            return ".".join(prefix), names
    return (comp[0] if comp else (names[0] if names else segment[0].name)), names


def _explicit_units(model: nn.Sequential) -> SplitModel:
    children = list(model.named_children())
    if not children:
        raise UserInputError(f"{type(model).__name__} declares explicit units but has no children")
    return SplitModel(Unit(i, name, tuple(f"{name}.{m}" if m else name for m, _ in child.named_modules()), child)
                      for i, (name, child) in enumerate(children, start=1))


def split_model(model: nn.Module, example_input: torch.Tensor | None = None) -> SplitModel:
    """Trace ``model`` and return it as a chain of split units sharing its weights.

    ``example_input`` is accepted for symmetry with the cost passes (tracing is symbolic and does not
    need it). Raises :class:`UserInputError` if the model cannot be traced, has more than one input
    or output, or contains no computational layer.
    """
    if getattr(model, EXPLICIT_UNITS_ATTR, False) and isinstance(model, nn.Sequential):
        return _explicit_units(model)
    gm = _trace(model)
    nodes = list(gm.graph.nodes)
    modules = dict(gm.named_modules())
    placeholders = [n for n in nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        raise UserInputError(f"{type(model).__name__}.forward takes {len(placeholders)} inputs; "
                             "split points need a model with exactly one input tensor")
    output = nodes[-1]
    if len(output.all_input_nodes) != 1 or not isinstance(output.args[0], fx.Node):
        raise UserInputError(f"{type(model).__name__}.forward must return one tensor, not a tuple or dict")
    comp = [i for i, n in enumerate(nodes) if _is_computational(n, modules)]
    if not comp:
        raise UserInputError(f"{type(model).__name__} has no computational layer (conv, linear, matmul) to split at")
    cuts = _valid_cuts(gm)
    bounds = _unit_boundaries(nodes, comp, cuts)
    starts = [0] + [q + 1 for q in bounds]
    stops = bounds + [len(nodes) - 2]
    inputs = [placeholders[0]] + [cuts[q] for q in bounds]
    outputs = [cuts[q] for q in bounds] + [output.args[0]]
    units = []
    for i, (a, b, inp, out) in enumerate(zip(starts, stops, inputs, outputs), start=1):
        segment = [n for n in nodes[a:b + 1] if n.op not in ("placeholder", "output")]
        name, names = _unit_name(segment, modules)
        units.append(Unit(i, name, names, _segment_module(gm, nodes, a, b, inp, out)))
    return SplitModel(units)
