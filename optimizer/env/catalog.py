"""Service catalog: profile tables → per-service, per-split tensors (Sec. III-B).

Each profiled model is instantiated ``services_per_model`` times (I = models × services_per_model,
paper: 9 × 5 = 45); copies share the model's profile. Split points z = 0..L_i are padded to
Z = 1 + max_i L_i; padded entries hold the values of z = L_i and are masked out by ``split_valid``.

Per service i and split z (profile fields of :mod:`profiler.table`):

- ``device_param_bytes``  D^U(z)  = Σ_{m≤z} S_m            (``splits[z].device_param_bytes``)
- ``device_work``         Ω^U(z)  = Σ_{m≤z} ω_m            (``device_flops`` or ``device_macs``)
- ``server_work``         Ω^E(z)  = Σ_{m>z} ω_m            (``server_flops`` or ``server_macs``)
- ``uplink_bytes``        D^up(z) = D^out_z, z = 0: raw input (``uplink_bytes``), eq. 1–2
- ``leakage``             Lea(z)  = SSIM, eq. 3; Lea(0) = 1 and Lea(L_i) = 0 by the paper's definition
- ``model_bytes``         D_i     = ``totals.param_bytes`` (storage, C7; migration, eq. 23)
- ``raw_input_bytes``     D_raw_i = ``input_bytes`` (eq. 10)
- ``leakage_floor``       SSIM of an attacker who learned nothing (``leakage_meta.floor.ssim.mean``; 0 if absent)

With ``defenses=True`` each model's priced defense options (:mod:`optimizer.env.defense_options`) follow
its split points as further columns: column L_i + 1 + o runs split ``choice_split`` with option o's rows
and ``accuracy_drop``; Z is then 1 + max_i (L_i + O_i) and padding still holds the values of z = L_i.
Without it (the default) ``choice_split`` is min(z, L_i) and every ``accuracy_drop`` is 0.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Any, Mapping

import torch

from common.errors import UserInputError
from optimizer.env.defense_options import defense_columns
from profiler import table as profile_table

ROW_FIELDS = ("device_param_bytes", "device_work", "server_work", "uplink_bytes", "leakage", "accuracy_drop",
              "choice_split")


@dataclass(frozen=True)
class ServiceCatalog:
    """The I services of the environment as tensors (CPU; :meth:`to` moves them)."""
    service_names: tuple[str, ...]       # "resnet18#0" … one per service
    model_names: tuple[str, ...]         # the profiled models, in catalog order
    service_model: torch.Tensor          # (I,) long: index into model_names
    num_splits: torch.Tensor             # (I,) long: L_i
    model_bytes: torch.Tensor            # (I,) float: D_i
    raw_input_bytes: torch.Tensor        # (I,) float: D_raw_i
    device_param_bytes: torch.Tensor     # (I, Z) float: D^U(z)
    device_work: torch.Tensor            # (I, Z) float: Ω^U(z), FLOPs or MACs
    server_work: torch.Tensor            # (I, Z) float: Ω^E(z)
    uplink_bytes: torch.Tensor           # (I, Z) float: D^up(z)
    leakage: torch.Tensor                # (I, Z) float: Lea(z) in [0, 1]
    leakage_floor: torch.Tensor          # (I,) float: the no-information SSIM of the model's data
    split_valid: torch.Tensor            # (I, Z) bool: a column of the service (z ≤ L_i, or a defense option)
    compute_unit: str                    # "flops" or "macs"
    leakage_warning: str | None = None   # the tables' leakage settings differ (see leakage_settings_warning)
    choice_split: torch.Tensor | None = None    # (I, Z) long: the split point a column runs (None: min(z, L_i))
    accuracy_drop: torch.Tensor | None = None   # (I, Z) float: Δacc of a defense option (None: no defenses)
    choice_labels: tuple[tuple[str, ...], ...] = ()   # per model: "z", or "z2:quantize@4" for an option

    def __post_init__(self) -> None:
        if self.choice_split is None:
            z = torch.arange(self.max_splits, device=self.num_splits.device)
            object.__setattr__(self, "choice_split", torch.minimum(z.unsqueeze(0), self.num_splits.unsqueeze(1)))

    @property
    def has_defenses(self) -> bool:
        return self.accuracy_drop is not None

    @property
    def defended(self) -> torch.Tensor:
        """(I, Z) bool: the column is a defense option (not a plain split point)."""
        z = torch.arange(self.max_splits, device=self.num_splits.device)
        return self.split_valid & (z.unsqueeze(0) > self.num_splits.unsqueeze(1))

    @property
    def num_services(self) -> int:
        return len(self.service_names)

    @property
    def max_splits(self) -> int:
        """Z = 1 + max_i L_i."""
        return self.device_work.shape[1]

    def to(self, device: torch.device | str) -> "ServiceCatalog":
        moved = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in vars(self).items()}
        return ServiceCatalog(**moved)

    @classmethod
    def from_profiles(cls, source: str | os.PathLike | Mapping[str, dict[str, Any]],
                      services_per_model: int = 5, compute_unit: str = "flops",
                      defenses: bool = False) -> "ServiceCatalog":
        """Build from a profile folder (read with leakage required) or a dict ``{model: table}``.

        A dict is validated like a folder would be, with the model name standing in for the file.
        """
        if isinstance(source, Mapping):
            tables = dict(source)
            sources = {name: f"profile '{name}'" for name in tables}
            for name, tab in tables.items():
                profile_table.validate(tab, source=sources[name], require_leakage=True)
        else:
            tables, files = profile_table.read_dir_with_files(source, require_leakage=True)
            sources = {name: str(path) for name, path in files.items()}
        return cls.from_tables(tables, services_per_model, compute_unit, sources, defenses)

    @classmethod
    def from_tables(cls, tables: Mapping[str, dict[str, Any]], services_per_model: int,
                    compute_unit: str, sources: Mapping[str, str] | None = None,
                    defenses: bool = False) -> "ServiceCatalog":
        if services_per_model < 1:
            raise UserInputError(f"config env.services_per_model: must be >= 1, got {services_per_model!r}")
        if not tables:
            raise UserInputError("profiles: the service list is empty (no profile tables given)")
        if compute_unit not in ("flops", "macs"):
            raise UserInputError(f"config env.compute_unit: must be 'flops' or 'macs', got {compute_unit!r}")
        sources = dict(sources or {})
        names = tuple(sorted(tables))
        per_model = [_model_rows(tables[n], sources.get(n, f"profile '{n}'"), compute_unit) for n in names]
        levels = torch.tensor([len(r["leakage"]) - 1 for r in per_model])
        labels = [tuple(str(z) for z in range(len(rows["leakage"]))) for rows in per_model]
        if defenses:
            for m, name in enumerate(names):
                labels[m] += _add_options(per_model[m], defense_columns(tables[name], compute_unit))
        widths = [len(rows["leakage"]) for rows in per_model]
        z_max = max(widths)

        def padded(key: str) -> torch.Tensor:
            out = torch.empty(len(names), z_max, dtype=torch.float64)
            for m, rows in enumerate(per_model):
                vals = rows[key]
                out[m, :len(vals)] = torch.tensor(vals, dtype=torch.float64)
                out[m, len(vals):] = vals[int(levels[m])]            # padding holds z = L_i
            return out

        model_idx = torch.arange(len(names)).repeat_interleave(services_per_model)
        fields = {k: padded(k)[model_idx].to(torch.float32)
                  for k in ("device_param_bytes", "device_work", "server_work", "uplink_bytes", "leakage")}
        num_splits = levels[model_idx]
        width = torch.tensor(widths)[model_idx]
        return cls(
            service_names=tuple(f"{names[m]}#{c}" for m in range(len(names)) for c in range(services_per_model)),
            model_names=names,
            service_model=model_idx,
            num_splits=num_splits,
            model_bytes=torch.tensor([r["model_bytes"] for r in per_model], dtype=torch.float32)[model_idx],
            raw_input_bytes=torch.tensor([r["raw_input_bytes"] for r in per_model],
                                         dtype=torch.float32)[model_idx],
            leakage_floor=torch.tensor([r["leakage_floor"] for r in per_model], dtype=torch.float32)[model_idx],
            split_valid=torch.arange(z_max).unsqueeze(0) < width.unsqueeze(1),
            compute_unit=compute_unit,
            leakage_warning=leakage_settings_warning(tables),
            choice_split=padded("choice_split")[model_idx].long(),
            accuracy_drop=padded("accuracy_drop")[model_idx].to(torch.float32) if defenses else None,
            choice_labels=tuple(labels),
            **fields,
        )


#: ``leakage_meta`` fields that change what an SSIM means; a catalog should hold one value of each.
LEAKAGE_SETTINGS = ("image_size", "weights", "data", "budget", "n_train", "n_test", "decoder", "loss", "seed")


def _setting(meta: Mapping[str, Any], key: str) -> str:
    value = meta.get(key)
    if key == "data" and isinstance(value, Mapping):
        value = value.get("name")
    if key == "image_size" and value is not None:
        return f"{value} px"
    if key == "weights":                  # each model has its own weights file: compare the kind only
        return "random-init" if value in (None, "none") else "trained"
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else str(value)


def leakage_settings_warning(tables: Mapping[str, dict[str, Any]]) -> str | None:
    """One line naming the leakage settings on which the tables differ, or ``None`` if they agree.

    Lea(z) (eq. 3) enters the privacy cost (eq. 10–11) of every service, so SSIMs measured at other
    image sizes, on other images, with other weights or another decoder budget are not on one scale.
    Tables whose ``leakage_meta`` records no settings (hand-made, SYNTHETIC) are listed only when
    others do record them.
    """
    metas = {name: tab.get("leakage_meta") or {} for name, tab in sorted(tables.items())}
    recorded = {name: meta for name, meta in metas.items() if any(k in meta for k in LEAKAGE_SETTINGS)}
    if not recorded:
        return None
    parts = []
    for key in LEAKAGE_SETTINGS:
        groups: dict[str, list[str]] = {}
        for name, meta in recorded.items():
            groups.setdefault(_setting(meta, key), []).append(name)
        if len(groups) > 1:
            shown = [f"{value} ({', '.join(names)})" if len(value) <= 30 else f"({', '.join(names)})"
                     for value, names in groups.items()]   # long values (decoder settings): names only
            parts.append(f"{key} " + " vs ".join(shown))
    unrecorded = sorted(set(metas) - set(recorded))
    if unrecorded:
        parts.append(f"no leakage settings recorded for {', '.join(unrecorded)}")
    if not parts:
        return None
    return ("profile tables measured leakage under different settings, so their SSIMs are not on one scale: "
            + "; ".join(parts))


def _add_options(rows: dict[str, list[float]], columns: list) -> tuple[str, ...]:
    """Append each defense option's column to a model's rows (its split's device parameters); its labels."""
    for col in columns:
        rows["device_param_bytes"].append(rows["device_param_bytes"][col.split])
        rows["device_work"].append(col.device_work)
        rows["server_work"].append(col.server_work)
        rows["uplink_bytes"].append(col.uplink_bytes)
        rows["leakage"].append(col.leakage)
        rows["accuracy_drop"].append(col.accuracy_drop)
        rows["choice_split"].append(col.split)
    return tuple(col.label for col in columns)


def _number(source: str, field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise UserInputError(f"{source}: field '{field}' must be a finite number >= 0, got {value!r}")
    return float(value)


def _model_rows(tab: dict[str, Any], source: str, compute_unit: str) -> dict[str, Any]:
    """Checks the environment needs beyond :func:`profiler.table.validate`, then the per-split rows."""
    totals = tab["totals"]
    if not isinstance(totals, dict) or "param_bytes" not in totals:
        raise UserInputError(f"{source}: field 'totals.param_bytes' is missing")
    model_bytes = _number(source, "totals.param_bytes", totals["param_bytes"])
    raw = _number(source, "input_bytes", tab["input_bytes"])
    if raw <= 0:
        raise UserInputError(f"{source}: field 'input_bytes' must be > 0 (D_raw of eq. 10), got {raw!r}")
    dev_key, srv_key = ("device_flops", "server_flops") if compute_unit == "flops" else ("device_macs", "server_macs")
    splits = tab["splits"]
    last = len(splits) - 1
    rows: dict[str, list[float]] = {k: [] for k in ROW_FIELDS}
    for z, split in enumerate(splits):
        where = f"splits[{z}]."
        rows["device_param_bytes"].append(_number(source, where + "device_param_bytes", split["device_param_bytes"]))
        rows["device_work"].append(_number(source, where + dev_key, split[dev_key]))
        rows["server_work"].append(_number(source, where + srv_key, split[srv_key]))
        rows["uplink_bytes"].append(_number(source, where + "uplink_bytes", split["uplink_bytes"]))
        ssim = float(split["leakage"]["ssim"])
        rows["leakage"].append(1.0 if z == 0 else 0.0 if z == last else ssim)
        rows["accuracy_drop"].append(0.0)
        rows["choice_split"].append(z)
        if z > 0:
            for key in ("device_param_bytes", "device_work"):
                if rows[key][z] < rows[key][z - 1]:
                    name = key if key != "device_work" else dev_key
                    raise UserInputError(f"{source}: field '{where}{name}' decreases with the split "
                                         f"({rows[key][z]!r} < {rows[key][z - 1]!r}); it must be a prefix sum")
    if rows["device_param_bytes"][-1] > model_bytes * (1 + 1e-6) + 1:
        raise UserInputError(f"{source}: field 'splits[{last}].device_param_bytes' "
                             f"({rows['device_param_bytes'][-1]!r}) exceeds totals.param_bytes ({model_bytes!r})")
    meta = tab.get("leakage_meta") or {}
    floor = ((meta.get("floor") or {}).get("ssim") or {}).get("mean", 0.0) if isinstance(meta, dict) else 0.0
    floor = _number(source, "leakage_meta.floor.ssim.mean", floor)
    if floor >= 1.0:
        raise UserInputError(f"{source}: field 'leakage_meta.floor.ssim.mean' must be < 1, got {floor!r}")
    return {**rows, "model_bytes": model_bytes, "raw_input_bytes": raw, "leakage_floor": floor}
