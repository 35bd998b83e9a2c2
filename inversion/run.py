"""One leakage run: model → split points → cached features → one decoder per split → stored Lea(z).

Reads top to bottom: resolve device and precision, load the victim (frozen, eval) and its profile
table, choose the image size and budget (given, else the table's active set's: :mod:`inversion.plan`),
pick the split points, load auxiliary/held-out images, measure the no-information floor, time a short
probe and print the plan, then for each split still to do: train g_z, score it, write results, samples
and profile at once. Nothing is written before the first split is measured (no results file archived, no
table touched), so a run stopped earlier leaves every file as it was.
Finished splits are found in the profile table itself or the results folder (same settings only).
After each split the paired monotonicity check (:mod:`inversion.consistency`) is rerun and its
violations are stored (the closing summary prints them).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm import tqdm

from common.devices import resolve_device
from common.errors import UserInputError
from common.files import check_writable
from common.precision import use_bf16
from common.threads import set_threads
from inversion import consistency, leakage_sets, report, store
from inversion.attack import SplitOutcome, attack_split
from inversion.config import LeakageSettings
from inversion.data import DATASETS, ImageSet, for_model, load_images, victim_input
from inversion.features import CACHE_DTYPE_BYTES, feature_shapes, iter_split_features
from inversion.identity import victim_identity
from inversion.metrics import no_information_floor
from inversion.plan import IMAGE_SIZE_MAX, measure_plan, resolve_defaults
from profiler.graph import SplitModel, split_model
from profiler.zoo import LoadedModel, load_model

SAMPLE_COUNT = 8
CACHE_BYTES = {"cpu": 512 << 20, "cuda": 8 << 30}


@dataclass(frozen=True)
class LeakageRequest:
    """What the user asked for (the command's options, parsed)."""

    model: str
    layers: tuple[int, ...] | None = None
    budget: str | None = None           # None: the table's active set's, else quick (inversion.plan)
    device: str = "auto"
    precision: str = "auto"
    seed: int = 0
    weights: str = "none"
    image_size: int | None = None
    data: str = "embedded"
    loss: str = "mse+ssim"
    profile: Path | None = None
    out: Path | None = None
    force: bool = False
    redo: bool = False
    threads: int | None = None


@dataclass
class RunSummary:
    model: str
    num_units: int
    unit_names: list[str]
    results: store.Results
    status: str
    skipped: list[int]
    computed: list[int]
    profile_path: Path
    out_dir: Path
    figures: list[Path]
    table_set: str = "active"           # where the run's set sits in the table: "active" or "partial"


def parse_layers(text: str | None) -> tuple[int, ...] | None:
    """``"1,4,9"`` → ``(1, 4, 9)``; ``None`` (option not given) → all measurable splits.

    An empty text, an empty item (``1,,4``) or a split given twice (``1,1``) is refused: each is a typo
    more likely than a wish.
    """
    if text is None:
        return None
    example = "expected comma-separated split points such as 1,4,9 (leave --layers out to measure every split)"
    parts = [part.strip() for part in text.split(",")]
    if not text.strip() or "" in parts:
        what = "is empty" if not text.strip() else "has an empty item"
        raise UserInputError(f"--layers {text!r} {what}: {example}")
    try:
        layers = [int(part) for part in parts]
    except ValueError:
        raise UserInputError(f"--layers {text!r}: {example}") from None
    twice = sorted({z for z in layers if layers.count(z) > 1})
    if twice:
        raise UserInputError(f"--layers {text!r}: split point{'s' if len(twice) > 1 else ''} "
                             f"{','.join(map(str, twice))} given twice")
    return tuple(sorted(layers))


def _choose_splits(layers: tuple[int, ...] | None, num_units: int, model: str) -> list[int]:
    measurable = list(range(1, num_units))
    if layers is None:
        return measurable
    bad = [z for z in layers if z not in measurable]
    if bad:
        raise UserInputError(f"--layers {','.join(map(str, bad))}: {model} has split points 0..{num_units}; "
                             f"measurable are 1..{num_units - 1} (0 and {num_units} are fixed at SSIM 1 and 0)")
    return list(layers)


def _load_victim(request: LeakageRequest) -> LoadedModel:
    """The frozen victim in eval mode (its image size is chosen with its table: :mod:`inversion.plan`)."""
    if request.image_size is not None and not 8 <= request.image_size <= IMAGE_SIZE_MAX:
        raise UserInputError(f"--image-size {request.image_size}: must be 8 to {IMAGE_SIZE_MAX} pixels")
    loaded = load_model(request.model, weights=request.weights)
    if len(loaded.input_shape) != 3:
        raise UserInputError(f"model {loaded.name}: input shape {loaded.input_shape} is not an image "
                             "(C, H, W); leakage is measured on images")
    return loaded


def default_paths(name: str) -> tuple[Path, Path]:
    """(profile table, results folder) of a model: zoo models use ``data/profiles/``; a user's
    ``pkg.module:factory`` gets ``profiles/pkg.module.factory.json`` (a file name, outside the folder
    ``evaluate`` and ``train`` read, so smoke-budget numbers never join them by accident)."""
    safe = name.replace(":", ".").replace("/", "_").replace("\\", "_")
    folder = Path("profiles") if ":" in name else Path("data/profiles")
    return folder / f"{safe}.json", Path("runs/leakage") / safe


def _check_memory(model: SplitModel, channels: int, image_size: int, splits: list[int], n_images: int,
                  device: torch.device) -> None:
    """Refuse a run whose largest single split's cached features (bf16) exceed half of the machine's RAM."""
    if device.type != "cpu" or not hasattr(os, "sysconf"):
        return
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return
    shapes = feature_shapes(model, torch.zeros(1, channels, image_size, image_size, device=device), splits)
    z, numel = max(((z, int(torch.Size(s).numel())) for z, s in shapes.items()), key=lambda item: item[1])
    need = n_images * (numel * CACHE_DTYPE_BYTES + 2 * channels * image_size ** 2 * 4)   # + images, inputs
    if need > ram / 2:
        raise UserInputError(f"--image-size {image_size}: the images and split {z}'s features take "
                             f"{need / 2**30:.0f} GiB "
                             f"for {n_images} images, more than half of this machine's {ram / 2**30:.0f} GiB; "
                             "use a smaller --image-size or --budget")


def _check_runs_at(model: SplitModel, name: str, shape: tuple[int, ...], image_size: int,
                   device: torch.device) -> None:
    """Fail before any work if the victim cannot run at ``image_size`` (e.g. a LeNet's fixed flatten)."""
    try:
        feature_shapes(model, torch.zeros(1, shape[0], image_size, image_size, device=device),
                       [model.num_units])
    except RuntimeError as exc:
        raise UserInputError(f"model {name} cannot run at --image-size {image_size} "
                             f"({str(exc).strip().splitlines()[0]}); use its native size {shape[-1]}") from None


def sample_indices(n_test: int) -> torch.Tensor:
    """Held-out images shown in the grid: evenly spaced, so every source image is represented."""
    return torch.linspace(0, n_test - 1, min(SAMPLE_COUNT, n_test)).round().long()


def _floor_json(images: ImageSet) -> dict[str, Any]:
    floor = no_information_floor(images.train, images.test)
    return {"ssim": floor.ssim.as_json(), "psnr": floor.psnr.as_json(),
            "definition": "mean auxiliary (train) image scored against every held-out image"}


def _width_fields(outcome: SplitOutcome, n_train: int) -> dict[str, Any]:
    """A vector's width beside the auxiliary set: ``data_limited`` when wider than the fitting pairs."""
    if not outcome.vector:
        return {}
    return {"feature_width": outcome.feature_width, "n_train": n_train, "n_fit": outcome.fit_pairs,
            "data_limited": outcome.data_limited}


def _entry(outcome: SplitOutcome, unit_name: str, shape: tuple[int, ...], decoder_input: tuple[int, ...],
           device: torch.device, bf16: bool, n_train: int) -> dict[str, Any]:
    ssim, psnr = outcome.leakage.ssim.as_json(), outcome.leakage.psnr.as_json()
    return _width_fields(outcome, n_train) | {
        "ssim": ssim["mean"], "ssim_ci95": ssim["ci95"], "psnr": psnr["mean"], "psnr_ci95": psnr["ci95"],
        "n_test": ssim["n"], "unit": unit_name, "feature_shape": list(shape),
        "decoder_input": list(decoder_input), "convergence": outcome.convergence.as_json(),
        "ssim_per_image": [round(v, 4) for v in outcome.ssim_per_image],
        "train_seconds": round(outcome.train_seconds, 2),
        "train_images_per_s": round(outcome.train_images_per_s, 1),
        "final_loss": round(outcome.final_loss, 5), "device": str(device),
        "precision": "bf16" if bf16 else "fp32",
        "sample_ssim": [outcome.ssim_per_image[i] for i in sample_indices(len(outcome.ssim_per_image))],
        "date": store.now_iso()}


def _progress_bar(z: int, nth: int, count: int, unit: str, steps: int, n_train: int, batch: int,
                  overall: tqdm) -> tuple[tqdm, Callable]:
    """The bar of split ``z``, the ``nth`` of ``count`` to measure; it also advances ``overall`` (all splits)."""
    bar = tqdm(total=steps, desc=f"split {z} ({nth}/{count}) {unit}", file=sys.stderr, leave=False,
               dynamic_ncols=True, position=1)
    every = max(1, steps // 50)

    def update(step: int, loss: float, ssim: float) -> None:
        if (step + 1) % every == 0 or step + 1 == steps:
            overall.update(step + 1 - bar.n)
            bar.update(step + 1 - bar.n)
            bar.set_postfix(epoch=f"{(step + 1) * batch / n_train:.1f}", loss=f"{loss:.4f}", ssim=f"{ssim:.3f}")

    return bar, update


class _CachingBar:
    """``progress(group, done, total)`` of :func:`iter_split_features` as a bar per caching pass."""

    def __init__(self) -> None:
        self.bar: tqdm | None = None

    def __call__(self, group: list[int], done: int, total: int) -> None:
        if self.bar is None:
            self.bar = tqdm(total=total, desc=f"caching features of splits {','.join(map(str, group))}",
                            unit="img", file=sys.stderr, leave=False, dynamic_ncols=True, position=1)
        self.bar.update(done - self.bar.n)
        if done >= total:
            self.bar.close()
            self.bar = None


def _prepare(request: LeakageRequest) -> dict[str, Any]:
    """Everything checked before any write: victim, table, splits, paths, settings, images."""
    device = resolve_device(request.device)
    bf16 = use_bf16(device, request.precision)
    if request.threads is not None:
        set_threads(request.threads)
    loaded = _load_victim(request)
    victim = victim_identity(loaded.model, device, bf16)     # hashed as loaded, before it moves or splits
    model = split_model(loaded.model).to(device)
    default_profile, default_out = default_paths(loaded.name)
    profile_path = Path(request.profile or default_profile)
    table = store.read_profile(profile_path, loaded.name)
    defaults = resolve_defaults(request.image_size, request.budget, table, int(loaded.input_shape[-1]),
                                str(profile_path))
    image_size = defaults.image_size
    if len(table["units"]) != model.num_units:
        raise UserInputError(f"--profile {profile_path}: has {len(table['units'])} units but {loaded.name} "
                             f"splits into {model.num_units}; regenerate it with `python cli.py profile "
                             f"--model {loaded.name} --format json --out {profile_path}`")
    splits = _choose_splits(request.layers, model.num_units, loaded.name)
    out_dir = Path(request.out or default_out)
    check_writable(out_dir, "--out", folder=True)
    check_writable(profile_path, "--profile")
    _check_runs_at(model, loaded.name, loaded.input_shape, image_size, device)
    data_label = request.data if request.data in DATASETS else str(Path(request.data).resolve())
    settings = LeakageSettings.from_budget(loaded.name, loaded.weights_label, data_label, image_size,
                                           defaults.budget, request.seed, request.loss, victim)
    _check_memory(model, loaded.input_shape[0], image_size, splits, settings.n_train + settings.n_test, device)
    images = for_model(load_images(request.data, image_size, settings.n_train, settings.n_test, request.seed),
                       loaded.input_shape[0])
    return {"device": device, "bf16": bf16, "loaded": loaded, "model": model, "profile_path": profile_path,
            "table": table, "splits": splits, "out_dir": out_dir, "settings": settings, "images": images,
            "defaults": defaults}


def run_leakage(request: LeakageRequest, log: Callable[[str], None] = lambda s: None) -> RunSummary:
    """Measure Lea(z) for the requested split points; see the module docstring for the order of work."""
    p = _prepare(request)
    device, bf16, loaded, model, settings, images = (p["device"], p["bf16"], p["loaded"], p["model"],
                                                     p["settings"], p["images"])
    profile_path, out_dir, splits = p["profile_path"], p["out_dir"], p["splits"]
    num_units = model.num_units
    unit_names = [u.name for u in model.units]
    redo = tuple(splits) if request.redo else ()
    results, status = store.open_results(out_dir, settings, num_units, p["table"], redo)
    todo = [z for z in splits if z not in results.splits]
    log(f"{loaded.name}: {num_units} units, splits {splits}; {status}; to do {todo}; device {device}, "
        f"{'bf16' if bf16 else 'fp32'}; {settings.n_train} train / {settings.n_test} test images at "
        f"{settings.image_size} px ({'gray' if images.channels == 1 else 'colour'})")
    log(p["defaults"].line)
    results.data = images.description
    results.run = {"device": str(device), "precision": "bf16" if bf16 else "fp32",
                   "results_file": str(out_dir / store.RESULTS_NAME)}
    if results.floor is None:
        results.floor = _floor_json(images)
    shown = sample_indices(len(images.test))
    channels = loaded.input_shape[0]
    train_inputs = victim_input(images.train, channels)
    cache_bytes = CACHE_BYTES.get(device.type, 2 << 30)
    plan = measure_plan(model, train_inputs, images.train, todo, len(images.train) + len(images.test),
                        settings.train, device, bf16, cache_bytes, [u.get("macs") or 0 for u in p["table"]["units"]])
    if plan is not None:
        log(plan.line(device, torch.get_num_threads()))
        warning = plan.warning(settings.image_size, settings.budget, device)
        if warning:
            log(warning)
    outputs = _Outputs(out_dir, results, images.test[shown], log)

    features = iter_split_features(model, train_inputs, victim_input(images.test, channels), todo, device,
                                   cache_bytes, bf16=bf16, progress=_CachingBar())
    overall = tqdm(total=len(todo) * settings.train.steps, desc=f"{loaded.name}: {len(todo)} splits",
                   unit="step", file=sys.stderr, leave=False, dynamic_ncols=True, position=0, disable=not todo)
    table_set = "active" if leakage_sets.active_key(p["table"]) == results.settings_key else "partial"
    for nth, feats in enumerate(features, start=1):
        z = feats.split
        bar, progress = _progress_bar(z, nth, len(todo), unit_names[z - 1], settings.train.steps,
                                      settings.n_train, settings.train.batch_size, overall)
        with bar:
            outcome = attack_split(feats, images.train, images.test, settings.train, device,
                                   request.seed + z, bf16, progress)
        outputs.begin()          # the first write of the run: only now is the results folder touched
        results.splits[z] = _entry(outcome, unit_names[z - 1], feats.sent_shape, feats.shape, device, bf16,
                                   settings.n_train)
        store.save_samples(out_dir, f"split_{z:03d}",
                           outcome.reconstructions[shown].permute(0, 2, 3, 1).numpy())
        log(f"split {z}: SSIM {results.splits[z]['ssim']:.3f}  ({outcome.train_seconds:.0f} s; held-out "
            f"auxiliary SSIM gain over the last half of training {outcome.convergence.gain_last_half:+.3f})")
        if outcome.data_limited:
            log(f"split {z}: data-limited, a lower bound: the {outcome.feature_width}-wide vector is wider than "
                f"the {outcome.fit_pairs} auxiliary pairs the decoder is fitted on; a larger --budget can raise it")
        table_set = _record(results, out_dir, profile_path, num_units, request.force)
    overall.close()
    if not todo:
        outputs.begin()
        write_table = _table_needs(p["table"], results, num_units, request.force)
        table_set = _record(results, out_dir, profile_path, num_units, request.force, write_table) \
            or table_set
    figures = report.write_figures(out_dir, loaded.name, num_units, results)
    if table_set != "active":
        log(_not_active_note(profile_path, p["table"], settings.budget, num_units))
    return RunSummary(loaded.name, num_units, unit_names, results, status, [z for z in splits if z not in todo],
                      todo, profile_path, out_dir, figures, table_set)


class _Outputs:
    """The run's first writes (archiving a results file of other settings, the originals' samples),
    deferred until a split is measured: a run stopped before that leaves every file as it was."""

    def __init__(self, out_dir: Path, results: store.Results, originals: torch.Tensor,
                 log: Callable[[str], None]) -> None:
        self.out_dir, self.results, self.originals, self.log = out_dir, results, originals, log
        self.done = False

    def begin(self) -> None:
        if self.done:
            return
        archived = store.archive_results(self.out_dir, self.results.settings_key)
        if archived is not None:
            self.log(f"results made under other settings moved to {archived}")
        store.save_samples(self.out_dir, "originals", self.originals.permute(0, 2, 3, 1).numpy())
        self.done = True


def _table_needs(table: dict[str, Any], results: store.Results, num_units: int, force: bool) -> bool:
    """Whether a run with nothing left to measure still has something to write into the table: values only
    its results file holds, a complete set to make active, or ``--force``."""
    found = leakage_sets.find_set(table, results.settings_key)
    if force or found is None or set(found[1]) != set(results.splits):
        return True
    complete = all(z in results.splits for z in range(1, num_units))
    return found[0] != "active" and complete


def _not_active_note(profile_path: Path, table: dict[str, Any], budget: str, num_units: int) -> str:
    """Why this run's values are not (yet) what ``evaluate``/``train`` read from the table."""
    shown = ("still shows its earlier leakage set" if leakage_sets.active_key(table)
             else "has no active leakage set yet")
    why = ("a smoke-budget set is a wiring check and never becomes active (unless rerun with --force)"
           if budget == "smoke" else
           f"they become active once every split 1..{num_units - 1} is measured with these settings "
           "(or rerun with --force)")
    return f"{profile_path}: the table {shown}; this run's values are kept in its leakage_history (partial); {why}"


def _record(results: store.Results, out_dir: Path, profile_path: Path, num_units: int, force: bool,
            write_table: bool = True) -> str:
    """Monotonicity check, then the results file and the profile table; returns where the set went
    (``""`` when the table is not written). A violation is reported once, in the closing summary
    (:func:`inversion.commands.summary_table`), not also here as it appears."""
    results.monotonicity = consistency.monotonicity_violations(results.splits)
    results.save(out_dir)
    if not write_table:
        return ""
    complete = all(z in results.splits for z in range(1, num_units))
    return store.update_profile(profile_path, results, complete, force)
