"""Features the server sees at each split point, computed once by the frozen victim model.

The victim is frozen, so one forward pass over an image yields the tensor crossing every cut
(``[x, out_1, …, out_L]``). Features of all requested splits are computed in one pass and cached
(bfloat16, on the attack device); when their total exceeds ``cache_bytes`` the splits are grouped and
one pass is run per group, each pass stopping at the group's deepest unit.

A unit whose last operation flattens a conv feature (``torch.flatten``, ``nn.Flatten``, ``.view`` /
``.reshape``) sends a vector that is a relabelling of a ``C × h × w`` tensor. The attacker runs the rest
of the model, so it knows that shape; the cached feature is stored in that *spatial form* (the same
numbers, reshaped) and inverted by the spatial decoder. Vectors that are not a flatten (fully connected
outputs) stay vectors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Protocol, Sequence

import torch
from torch import fx, nn

from common.precision import autocast


CACHE_DTYPE = torch.bfloat16
CACHE_DTYPE_BYTES = 2


class UnitLike(Protocol):
    index: int
    module: nn.Module


class SplitModelLike(Protocol):
    """What :mod:`profiler.graph` ``SplitModel`` offers and this module needs."""

    @property
    def units(self) -> list[UnitLike]: ...

    @property
    def num_units(self) -> int: ...


@dataclass
class SplitFeatures:
    """Cached features of split ``z`` for the auxiliary (train) and held-out (test) images."""

    split: int
    train: torch.Tensor          # N × decoder-input shape (a flattened conv feature in its spatial form)
    test: torch.Tensor
    sent_shape: tuple[int, ...] = ()   # shape of the tensor that crosses the cut (batch excluded)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape the decoder receives."""
        return tuple(self.train.shape[1:])


_FLATTEN_FUNCTIONS = (torch.flatten, torch.reshape)
_FLATTEN_METHODS = ("flatten", "view", "reshape")


def _flatten_input(gm: fx.GraphModule) -> fx.Node | None:
    """The node a GraphModule's output is a flatten of, if its last operation is a flatten."""
    out = next(n for n in gm.graph.nodes if n.op == "output")
    last = out.args[0]
    if not isinstance(last, fx.Node):
        return None
    modules = dict(gm.named_modules())
    flat = ((last.op == "call_function" and last.target in _FLATTEN_FUNCTIONS)
            or (last.op == "call_method" and last.target in _FLATTEN_METHODS)
            or (last.op == "call_module" and isinstance(modules.get(str(last.target)), nn.Flatten)))
    source = last.args[0] if flat and last.args else None
    return source if isinstance(source, fx.Node) else None


@torch.no_grad()
def spatial_form(module: nn.Module, unit_input: torch.Tensor) -> tuple[int, ...] | None:
    """``C × h × w`` (h·w > 1) of the tensor a unit flattens into its output vector, else ``None``."""
    before: torch.Tensor | None = None
    if isinstance(module, nn.Sequential) and len(module) and isinstance(module[-1], nn.Flatten):
        before = module[:-1](unit_input[:1])
    elif isinstance(module, fx.GraphModule):
        node = _flatten_input(module)
        if node is not None:
            interpreter = fx.Interpreter(module, garbage_collect_values=False)
            interpreter.run(unit_input[:1])
            before = interpreter.env.get(node)
    if not isinstance(before, torch.Tensor) or before.dim() != 4 or before.shape[2] * before.shape[3] <= 1:
        return None
    return tuple(before.shape[1:])


@torch.no_grad()
def decoder_input_shapes(model: SplitModelLike, example: torch.Tensor, splits: Sequence[int]
                         ) -> dict[int, tuple[int, ...]]:
    """Shape each split's feature is handed to the decoder in: its spatial form if it is a flatten."""
    outs = _forward_to(model, example[:1], max(splits))
    shapes = {}
    for z in splits:
        form = spatial_form(model.units[z - 1].module, outs[z - 1]) if outs[z].dim() == 2 else None
        shapes[z] = form if form is not None and torch.Size(form).numel() == outs[z][0].numel() \
            else tuple(outs[z].shape[1:])
    return shapes


@torch.no_grad()
def feature_shapes(model: SplitModelLike, example: torch.Tensor, splits: Sequence[int]) -> dict[int, tuple[int, ...]]:
    """Shape (batch excluded) of the tensor crossing each split in ``splits``, from one image."""
    outs = _forward_to(model, example[:1], max(splits))
    return {z: tuple(outs[z].shape[1:]) for z in splits}


def _forward_to(model: SplitModelLike, x: torch.Tensor, deepest: int) -> list[torch.Tensor]:
    outs = [x]
    for unit in model.units[:deepest]:
        outs.append(unit.module(outs[-1]))
    return outs


def group_splits(shapes: dict[int, tuple[int, ...]], n_images: int, cache_bytes: int) -> list[list[int]]:
    """Consecutive groups of splits whose cached features fit in ``cache_bytes`` (a split alone may not)."""
    groups: list[list[int]] = [[]]
    used = 0
    for z in sorted(shapes):
        size = n_images * CACHE_DTYPE_BYTES * int(torch.Size(shapes[z]).numel())
        if groups[-1] and used + size > cache_bytes:
            groups.append([])
            used = 0
        groups[-1].append(z)
        used += size
    return [g for g in groups if g]


@torch.no_grad()
def _extract(model: SplitModelLike, images: torch.Tensor, splits: list[int], shapes: dict[int, tuple[int, ...]],
             device: torch.device, batch_size: int, bf16: bool,
             on_batch: Callable[[int], None] = lambda n: None) -> dict[int, torch.Tensor]:
    cache = {z: torch.empty((len(images), *shapes[z]), dtype=CACHE_DTYPE, device=device) for z in splits}
    deepest = max(splits)
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size].to(device)
        with autocast(device, bf16):
            outs = _forward_to(model, batch, deepest)
        for z in splits:
            cache[z][start:start + len(batch)] = outs[z].reshape(len(batch), *shapes[z]).to(CACHE_DTYPE)
        on_batch(len(batch))
    return cache


def iter_split_features(model: SplitModelLike, train: torch.Tensor, test: torch.Tensor, splits: Sequence[int],
                        device: torch.device, cache_bytes: int, batch_size: int = 64, bf16: bool = False,
                        progress: Callable[[list[int], int, int], None] = lambda group, done, total: None
                        ) -> Iterator[SplitFeatures]:
    """Yield :class:`SplitFeatures` for ``splits`` in order; ``train``/``test`` are model-normalised inputs.

    ``progress(group, done, total)`` follows each caching pass: images done of ``total`` for the splits
    of ``group``.
    """
    if not splits:
        return
    shapes = decoder_input_shapes(model, train[:1].to(device), splits)
    sent = feature_shapes(model, train[:1].to(device), splits)
    for group in group_splits(shapes, len(train) + len(test), cache_bytes):
        done = 0

        def tick(n: int, group: list[int] = group) -> None:
            nonlocal done
            done += n
            progress(group, done, len(train) + len(test))

        train_f = _extract(model, train, group, shapes, device, batch_size, bf16, tick)
        test_f = _extract(model, test, group, shapes, device, batch_size, bf16, tick)
        for z in group:
            yield SplitFeatures(z, train_f.pop(z), test_f.pop(z), sent[z])
