"""One ``defend`` run: model → options (split × defense × strength × seed) → priced records in its table.

Reads top to bottom: resolve device, precision and threads; load the victim with its trained weights
and its profile table; expand the options (every split also gets the ``none`` row, the reference the
others are priced against); load the labelled data; measure the undefended accuracy once; then price
each option not yet in the table's set (:mod:`inversion.defense.measure`), writing its record at once
(:mod:`inversion.defense.table`), so an interrupted run resumes where it stopped. The first option's
time gives the plan line; the bar's ETA follows the measured pace. Nothing is written before the first
option is priced.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from tqdm import tqdm

from common.devices import resolve_device
from common.errors import UserInputError
from common.files import check_writable
from common.precision import use_bf16
from common.threads import set_threads
from inversion import store
from inversion.config import settings_digest
from inversion.data import victim_input
from inversion.defense import adversarial, builtin  # noqa: F401  (registers the built-in defenses)
from inversion.defense import table as defense_table
from inversion.defense.builtin import NoDefense
from inversion.defense.finetune import DefendedSplit, accuracy, finetune
from inversion.defense.labelled import load_labelled
from inversion.defense.measure import BUDGETS, Victim, price_option
from inversion.defense.registry import DEFENSES, parse_strengths
from inversion.identity import victim_identity
from inversion.metrics import no_information_floor
from inversion.run import default_paths, parse_layers
from profiler.costs import count_units
from profiler.graph import split_model
from profiler.zoo import load_model

WEIGHTS_DIR = Path("data/weights")
THREAT = ("the attacker knows the split, the defense and its strength; the decoder attack trains on "
          "defended features of auxiliary images, rMLE also knows the device-side weights as fine-tuned")


@dataclass(frozen=True)
class DefendRequest:
    model: str
    defenses: tuple[str, ...]
    strengths: str | None = None          # one list for every defense given; None: each defense's defaults
    layers: tuple[int, ...] | None = None
    seeds: tuple[int, ...] = (0,)
    budget: str = "quick"
    dataset: str = "fashion-mnist"
    weights: str | None = None            # None: the bundled trained weights (data/weights/*.json)
    image_size: int | None = None         # None: the size those weights were trained at, else the native one
    profile: Path | None = None
    device: str = "auto"
    precision: str = "auto"
    threads: int | None = None
    redo: bool = False


@dataclass
class DefendSummary:
    model: str
    profile_path: Path
    settings_key: str
    records: dict[str, dict[str, Any]]     # the requested options' records, this run's and earlier ones
    priced: list[str]
    skipped: list[str]
    reference_accuracy: float
    floor: float
    set_size: int = 0                      # records the set holds in all (other options included)


def trained_record(model: str) -> dict[str, Any] | None:
    """The bundled Fashion-MNIST training record of ``model`` (``data/weights/*.json``), if any."""
    for file in sorted(WEIGHTS_DIR.glob("*.json")):
        record = json.loads(file.read_text()).get(model)
        if record and Path(record["weights_file"]).is_file():
            return record
    return None


def default_weights(model: str) -> str:
    """The bundled trained weights of ``model``; refused (one line) for a model without them."""
    record = trained_record(model)
    if record is None:
        raise UserInputError(f"--weights: {model} has no bundled trained weights; a defense is priced in accuracy, "
                             "so give the state_dict it was trained to (or `none` to price a random init)")
    return record["weights_file"]


class _Classifier(nn.Module):
    """[0, 1] images → logits of the undefended victim (for the reference accuracy)."""

    def __init__(self, model: nn.Module, channels: int):
        super().__init__()
        self.model, self.channels = model, channels

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(victim_input(images, self.channels))


def _options(request: DefendRequest, num_units: int) -> list[tuple[int, str, float, int]]:
    measurable = list(range(1, num_units))
    splits = measurable if request.layers is None else list(request.layers)
    bad = [z for z in splits if z not in measurable]
    if bad:
        raise UserInputError(f"--layers {','.join(map(str, bad))}: {request.model} has split points 0..{num_units}; "
                             f"a defense applies at 1..{num_units - 1}")
    if request.budget not in BUDGETS:
        raise UserInputError(f"--budget {request.budget!r}: expected one of {', '.join(BUDGETS)}")
    chosen = [(name, parse_strengths(request.strengths, DEFENSES.get(name))) for name in request.defenses
              if name != "none"]
    for name, strengths in chosen:
        try:
            for s in strengths:
                DEFENSES.get(name).build(s, (4, 4, 4))
        except ValueError as exc:
            raise UserInputError(f"--strengths: {exc}") from None
    out = []
    for seed in request.seeds:
        for z in splits:
            out.append((z, "none", 0.0, seed))
            out += [(z, name, s, seed) for name, strengths in chosen for s in strengths]
    return out


PROBE_STEPS = 3


def _finetune_step_s(victim: Victim, z: int, budget) -> float:
    """Seconds per fine-tuning step of device and server at split ``z`` (after one untimed step)."""
    probe = DefendedSplit(victim.split_model.head(z), NoDefense(0.0, ()), victim.split_model.tail(z), victim.channels)
    probe.defense.trains = "both"
    config = replace(budget.finetune, steps=1, val_images=0)
    finetune(probe.to(victim.device), victim.train_x, victim.train_y, config, victim.device, victim.bf16, 0)
    started = time.perf_counter()
    finetune(probe, victim.train_x, victim.train_y, replace(config, steps=PROBE_STEPS), victim.device, victim.bf16, 0)
    return (time.perf_counter() - started) / PROBE_STEPS


def _plan_line(todo: list[tuple[int, str, float, int]], first_s: float, victim: Victim, budget) -> str:
    """The first option's time for every option, plus the fine-tuning of those that train (timed by a probe
    at the deepest split they use); the probe changes no value."""
    trained = [o for o in todo[1:] if DEFENSES.get(o[1]).trains != "none"]
    extra = len(trained) * budget.finetune.steps * _finetune_step_s(victim, max(o[0] for o in trained), budget) \
        if trained else 0.0
    total = first_s * len(todo) + extra
    span = lambda s: f"{s:.0f} s" if s < 120 else f"{s / 60:.0f} min"  # noqa: E731
    return (f"plan: {len(todo)} options ≈ {span(total)} on this machine: {first_s:.0f} s each (the first), "
            f"+ fine-tuning {len(trained)} of them ≈ {span(extra)}; the bar's ETA follows the measured pace")


def run_defend(request: DefendRequest, log: Callable[[str], None] = lambda s: None) -> DefendSummary:
    """Price every requested option; see the module docstring for the order of work."""
    device = resolve_device(request.device)
    bf16 = use_bf16(device, request.precision)
    if request.threads is not None:
        set_threads(request.threads)
    weights = request.weights or default_weights(request.model)
    loaded = load_model(request.model, weights=weights)
    identity = victim_identity(loaded.model, device, bf16)
    model = split_model(loaded.model).eval().to(device)
    profile_path = Path(request.profile or default_paths(loaded.name)[0])
    table = store.read_profile(profile_path, loaded.name)
    if len(table["units"]) != model.num_units:
        raise UserInputError(f"--profile {profile_path}: has {len(table['units'])} units but {loaded.name} "
                             f"splits into {model.num_units}")
    check_writable(profile_path, "--profile")
    options = _options(request, model.num_units)
    record = trained_record(loaded.name) if request.weights is None else None
    channels = int(loaded.input_shape[0])
    size = request.image_size or int((record or {}).get("image_size") or loaded.input_shape[-1])
    budget = BUDGETS[request.budget]
    settings = {"model": loaded.name, "weights": loaded.weights_label, "victim": asdict(identity),
                "dataset": request.dataset, "image_size": size, "budget": budget.as_json()}
    key = settings_digest(settings)                    # what fixes a number, seeds aside (no free text)
    meta = settings | {"settings_key": key, "threat_model": THREAT, "splitpriv_version": store.splitpriv_version()}
    done = defense_table.records(table, key)
    todo = [o for o in options if request.redo or defense_table.option_key(*o) not in done]
    data = load_labelled(request.dataset, size)
    example = victim_input(data.train_x[:1], channels)
    try:
        unit_macs = [c.macs for c in count_units([u.module for u in model.units], example.to(device))[0]]
    except RuntimeError as exc:
        raise UserInputError(f"--image-size {size}: {loaded.name} cannot run at it "
                             f"({str(exc).strip().splitlines()[0][:120]}); use {loaded.input_shape[-1]}") from None
    reference = accuracy(_Classifier(model, channels), data.test_x, data.test_y, device, bf16)
    log(f"{loaded.name}: {len(options)} options ({len(options) - len(todo)} already in {profile_path}), to do "
        f"{len(todo)}; undefended test accuracy {reference.value:.4f} on {reference.n} images; {device}, "
        f"{'bf16' if bf16 else 'fp32'}, budget {budget.name}")
    victims: dict[int, Victim] = {}
    aux, vic = data.attacker_images(budget.n_train, budget.n_test, request.seeds[0])
    floor = no_information_floor(aux, vic).ssim.mean
    priced: list[str] = []
    bar = tqdm(total=len(todo), desc=f"{loaded.name}: defenses", unit="option", file=sys.stderr,
               dynamic_ncols=True, disable=not todo)
    started = time.perf_counter()
    for nth, (z, name, strength, seed) in enumerate(todo, start=1):
        if seed not in victims:
            aux, vic = data.attacker_images(budget.n_train, budget.n_test, seed)
            victims[seed] = Victim(model, channels, data.train_x, data.train_y, data.test_x, data.test_y, aux, vic,
                                   unit_macs, device, bf16)
        victim = victims[seed]
        floor = no_information_floor(victim.aux_images, victim.victim_images).ssim.mean
        bar.set_postfix_str(f"z{z} {name} {strength:g} seed {seed}")
        record = price_option(victim, z, DEFENSES.get(name), strength, seed, budget, reference.value,
                              lambda phase: bar.set_postfix_str(f"z{z} {name} {strength:g} seed {seed}: {phase}"))
        record["floor_ssim"] = round(floor, 4)
        outcome = defense_table.write_record(profile_path, key, meta | {"reference_accuracy": reference.as_json(),
                                                                         "dataset_description": data.description},
                                             record, request.redo)
        priced.append(defense_table.option_key(z, name, strength, seed) + ("" if outcome != "kept" else " (kept)"))
        bar.update(1)
        if nth == 1 and len(todo) > 1:
            log(_plan_line(todo, time.perf_counter() - started, victim, budget))
    bar.close()
    table = store.read_profile(profile_path, loaded.name)
    every = defense_table.records(table, key)
    asked = {defense_table.option_key(*o) for o in options}
    return DefendSummary(loaded.name, profile_path, key, {k: v for k, v in every.items() if k in asked}, priced,
                         [defense_table.option_key(*o) for o in options if o not in todo], reference.value, floor,
                         len(every))
