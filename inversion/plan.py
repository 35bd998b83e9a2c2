"""What a leakage run will cost before it starts: its default image size and budget, and a timed plan.

Defaults. A run with no ``--image-size`` / ``--budget`` uses those the profile table's active set was
measured with (its ``leakage_meta``), so ``leakage --model resnet50`` as typed measures like the bundled
table (64 px, quick). A table with no measured set (or only a smoke-budget one) falls back to a stated rule: the model's native size,
capped at :data:`RULE_MAX_PX` (64 px) for a larger one, and the quick budget.

Plan. Before the real work, :func:`measure_plan` times a short probe on the run's own device, precision
and threads: a forward pass of :data:`PROBE_IMAGES` images to the deepest split to do (the caching pass's
pace) and :data:`PROBE_STEPS` decoder steps at the deepest and the shallowest split to do (the decoder's
pace; fewer when they are slow), then extrapolates over caching passes × splits × steps. The probe seeds nothing the run uses
(each decoder reseeds itself), so values do not change with it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, Sequence

import torch

from inversion.attack import TrainConfig, train_decoder
from inversion.config import BUDGETS, Budget
from inversion.features import SplitModelLike, decoder_input_shapes, group_splits, iter_split_features

RULE_MAX_PX = 64             # default image side for a model with no measured set and a larger native size
IMAGE_SIZE_MAX = 1024        # --image-size bound: above it one split's cached features alone exceed RAM
PROBE_IMAGES = 64            # images of the timed forward pass (one decoder batch)
PROBE_STEPS = 3              # timed decoder steps per probed split (after one untimed step) ...
PROBE_SECONDS = 10.0         # ... or fewer, once this long has been spent timing them (a slow run's plan)
WARN_SECONDS = 3600.0        # a plan longer than this is printed with the faster alternatives


@dataclass(frozen=True)
class Defaults:
    """Image size and budget of a run, and the line that names them and where they came from."""

    image_size: int
    budget: str
    line: str


def budget_words(budget: Budget) -> str:
    return (f"the {budget.name} budget ({budget.steps} steps × {budget.batch_size} images; "
            f"{budget.n_train} auxiliary / {budget.n_test} held-out images)")


def resolve_defaults(image_size: int | None, budget: str | None, table: dict[str, Any], native_px: int,
                     table_path: str) -> Defaults:
    """``--image-size`` / ``--budget`` as given, else the table's active set's, else the rule (module doc)."""
    meta = table.get("leakage_meta") or {}
    measured = any(isinstance(s.get("leakage"), dict) and s["leakage"].get("measured")
                   for s in table.get("splits", []))
    measured = measured and meta.get("budget") in BUDGETS and meta.get("budget") != "smoke"  # a wiring check
    table_px = meta.get("image_size") if measured and isinstance(meta.get("image_size"), int) else None
    table_budget = meta.get("budget") if measured else None
    rule_px = min(native_px, RULE_MAX_PX)
    size = image_size or table_px or rule_px
    chosen = budget or table_budget or "quick"
    size_from = ("--image-size" if image_size else f"the active set of {table_path}" if table_px
                 else f"no measured set: the native {native_px} px" if rule_px == native_px
                 else f"no measured set: {RULE_MAX_PX} px, not the native {native_px} px, keeps the run "
                      "within about an hour on one CPU thread")
    budget_from = ("--budget" if budget else f"the active set of {table_path}" if table_budget
                   else "the default")
    if size_from == budget_from:
        line = f"using {size} px and {budget_words(BUDGETS[chosen])}, from {size_from}"
    else:
        line = f"using {size} px ({size_from}) and {budget_words(BUDGETS[chosen])} ({budget_from})"
    changes = [flag for flag, given in (("--image-size", image_size), ("--budget", budget)) if not given]
    if changes:
        line += f"; {'/'.join(changes)} to change"
    return Defaults(size, chosen, line)


@dataclass(frozen=True)
class Plan:
    """Estimated seconds of a run (caching passes + decoder training), from timed probe steps."""

    splits: int
    steps: int
    caching_s: float
    step_s: float
    per_split_s: float
    probed: tuple[int, ...]

    @property
    def total_s(self) -> float:
        return self.caching_s + self.splits * self.per_split_s

    def line(self, device: torch.device, threads: int) -> str:
        where = f"{device.type}" + (f", {threads} thread{'s' if threads != 1 else ''}" if device.type == "cpu" else "")
        return (f"plan: {self.splits} splits × {self.steps} decoder steps ≈ {duration(self.total_s)} on this "
                f"machine ({where}): caching features {duration(self.caching_s)}, "
                f"{duration(self.per_split_s)} per split ({self.step_s:.2f} s per step, timed at split"
                f"{'s' if len(self.probed) > 1 else ''} {' and '.join(map(str, self.probed))}); "
                "the progress bar's ETA follows the measured pace")

    def warning(self, image_size: int, budget: str, device: torch.device) -> str | None:
        """The faster alternatives, when the plan exceeds :data:`WARN_SECONDS`."""
        if self.total_s <= WARN_SECONDS:
            return None
        few = min(self.splits, 3)
        options = [f"--layers with {few} split points (≈ {duration(self.caching_s + few * self.per_split_s)})"]
        if image_size > RULE_MAX_PX:
            options.append(f"--image-size {RULE_MAX_PX} (≈ {RULE_MAX_PX ** 2 / image_size ** 2:.0%} of the "
                           "pixels; the bundled tables' size)")
        if budget != "smoke":
            options.append("--budget smoke (a wiring check, never a measurement)")
        if device.type != "cuda":
            options.append("a GPU with --device cuda")
        return f"warning: this run takes more than an hour here; faster: {'; '.join(options)}"


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _pass_fractions(groups: list[list[int]], unit_macs: Sequence[float] | None) -> list[float]:
    """Cost of each caching pass relative to a pass to the deepest split (cumulative MACs, else 1)."""
    deepest = max(max(g) for g in groups)
    if not unit_macs or len(unit_macs) < deepest or sum(unit_macs[:deepest]) <= 0:
        return [1.0] * len(groups)
    total = sum(unit_macs[:deepest])
    return [sum(unit_macs[:max(g)]) / total for g in groups]


class _EnoughSteps(Exception):
    """Ends a probe's decoder training once its steps are timed."""


def _timed_steps(features, images: torch.Tensor, config: TrainConfig, device: torch.device, bf16: bool) -> float:
    """Seconds per decoder step at one split: up to ``PROBE_STEPS`` steps (``PROBE_SECONDS`` at most) timed
    after one untimed step."""
    times: list[float] = []

    def tick(step: int, loss: float, ssim: float) -> None:
        times.append(time.perf_counter())
        if len(times) > PROBE_STEPS or (len(times) > 1 and times[-1] - times[0] > PROBE_SECONDS):
            raise _EnoughSteps

    try:
        train_decoder(features, images, int(images.shape[-1]), replace(config, steps=PROBE_STEPS + 1, val_images=0),
                      device, seed=0, bf16=bf16, progress=tick)
    except _EnoughSteps:
        pass
    return (times[-1] - times[0]) / max(1, len(times) - 1)


def measure_plan(model: SplitModelLike, train_inputs: torch.Tensor, train_images: torch.Tensor, todo: list[int],
                 n_images: int, config: TrainConfig, device: torch.device, bf16: bool, cache_bytes: int,
                 unit_macs: Sequence[float] | None = None) -> Plan | None:
    """Time the probe (module doc) and extrapolate; ``None`` when there is nothing to do.

    ``train_inputs`` are the victim's inputs of the auxiliary images, ``train_images`` the same images in
    [0, 1]; ``n_images`` is how many images each caching pass runs (auxiliary + held-out).
    """
    if not todo:
        return None
    n = min(PROBE_IMAGES, len(train_inputs))
    probed = tuple(sorted({todo[-1], todo[0]}, reverse=True))
    step_times, forward_s = [], 0.0
    for z in probed:
        if step_times and step_times[0] * PROBE_STEPS > PROBE_SECONDS:   # slow: one probed split must do
            probed = probed[:1]
            break
        started = time.perf_counter()
        (features,) = iter_split_features(model, train_inputs[:n], train_inputs[:1], [z], device, cache_bytes,
                                          bf16=bf16)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if z == probed[0]:
            forward_s = (time.perf_counter() - started) / (n + 1)
        step_times.append(_timed_steps(features, train_images[:n], config, device, bf16))
    shapes = decoder_input_shapes(model, train_inputs[:1].to(device), todo)
    groups = group_splits(shapes, n_images, cache_bytes)
    caching_s = forward_s * n_images * sum(_pass_fractions(groups, unit_macs))
    step_s = sum(step_times) / len(step_times)
    return Plan(len(todo), config.steps, caching_s, step_s, step_s * config.steps, tuple(sorted(probed)))
