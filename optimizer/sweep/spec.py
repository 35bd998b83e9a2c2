"""What a sweep asks: axes of settings, the policies compared in each, seeds, budget and evaluation.

A spec is a YAML file (bundled: ``optimizer/sweep/specs/fig4.yaml`` … ``fig14.yaml``; or any path)::

    name: fig11
    title: User cost against the delay limit τ̄ (Fig. 11)
    axes:                                   # the grid is the product of the axes
      - name: tau_bar_s
        keys: [env.cost.delay_limit_s]      # any --set key of the env (env.…) or the trainer
        values: [2.0, 2.5, 3.0, 3.5, 4.0]   # with several keys, each value lists one value per key
    algorithms: [hc-mappo-l, h-mappo]       # trained per setting, every seed
    heuristics: [lagrangian, greedy]        # evaluated per setting (λ re-tuned on its own calibration episodes)
    room: true                              # and the hindsight reference of each setting (optimizer/sweep/room.py)
    seeds: [0, 1, 2]
    iterations: 1000
    eval_episodes: 10
    set: []                                 # fixed overrides of every setting
    claims: ["..."]                          # what the paper says: sentences or checks (:mod:`.claims`)

A :class:`Setting` is one point of the grid: its axis values and the ``--set`` overrides that make it.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from common.errors import UserInputError
from common.limits import SEED_MAX
from optimizer import baselines
from optimizer.algos.ablations import ALGORITHMS
from optimizer.config import load_file
from optimizer.sweep.claims import Claim, parse_claim

SPECS = Path(__file__).resolve().parent / "specs"
#: Evaluation episodes of every setting: shared by its policies, apart from training (seeds from 5e8) and
#: calibration (eval seed + 1,000,003) episodes.
EVAL_SEED = 4242


@dataclass(frozen=True)
class Axis:
    name: str
    keys: tuple[str, ...]
    values: tuple[Any, ...]      # one per point; with several keys, a tuple of one value per key


@dataclass(frozen=True)
class Setting:
    index: int
    values: dict[str, Any]       # axis name → value at this point
    overrides: tuple[str, ...]   # ``key=value`` strings, fixed ones first

    @property
    def slug(self) -> str:
        """A folder name: ``s03-tau_bar_s=3.5`` (the index keeps the grid's order)."""
        parts = ",".join(f"{k}={_short(v)}" for k, v in self.values.items()) or "default"
        return f"s{self.index:02d}-" + re.sub(r"[^A-Za-z0-9_.=,+-]", "_", parts)


@dataclass
class SweepSpec:
    name: str
    title: str = ""
    axes: list[Axis] = field(default_factory=list)
    algorithms: list[str] = field(default_factory=list)
    heuristics: list[str] = field(default_factory=list)
    room: bool = True                 # add the hindsight reference to every setting (:mod:`.room`)
    seeds: list[int] = field(default_factory=lambda: [0, 1])
    iterations: int = 1000
    eval_episodes: int = 10
    eval_seed: int = EVAL_SEED
    preset: str = "default"
    set: list[str] = field(default_factory=list)
    claims: list[Claim] = field(default_factory=list)
    note: str = ""

    def settings(self) -> list[Setting]:
        grid = itertools.product(*[list(a.values) for a in self.axes]) if self.axes else [()]
        out = []
        for index, point in enumerate(grid):
            overrides = list(self.set)
            for axis, value in zip(self.axes, point):
                per_key = value if len(axis.keys) > 1 else (value,)
                overrides += [f"{key}={json.dumps(v)}" for key, v in zip(axis.keys, per_key)]
            out.append(Setting(index, {a.name: v for a, v in zip(self.axes, point)}, tuple(overrides)))
        return out

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))      # tuples → lists: what a re-read spec compares to

    def identity(self) -> dict[str, Any]:
        """What makes a sweep's results: every field but the words around them (a reworded or newly checked
        claim leaves a finished sweep the same sweep)."""
        return identity_of(self.to_dict())


#: Fields that describe a sweep without changing what it measures.
DESCRIPTIVE = ("title", "claims", "note")


def identity_of(spec_dict: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in spec_dict.items() if k not in DESCRIPTIVE}


def _short(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "-".join(_short(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def bundled_names() -> list[str]:
    return sorted((p.stem for p in SPECS.glob("*.yaml")), key=lambda n: (len(n), n))


def load_spec(name_or_path: str) -> SweepSpec:
    """A bundled spec by name (``fig11``) or a YAML file; one-line error on anything malformed."""
    path = Path(name_or_path)
    if not path.suffix:
        path = SPECS / f"{name_or_path}.yaml"
        if not path.is_file():
            raise UserInputError(f"sweep {name_or_path}: no such bundled spec (known: {', '.join(bundled_names())}; "
                                 "or give a .yaml file)")
    return parse_spec(load_file(path), str(path))


LIST_FIELDS = ("axes", "algorithms", "heuristics", "seeds", "set", "claims")


def _example(name: str) -> str:
    return {"axes": "{name: …, keys: […], values: […]}", "algorithms": "hc-mappo-l", "heuristics": "greedy",
            "seeds": "0, 1", "set": "env.num_users=20", "claims": '"…"'}[name]


def parse_spec(data: dict[str, Any], where: str = "spec") -> SweepSpec:
    known = set(SweepSpec.__dataclass_fields__)
    unknown = sorted(set(data) - known)
    if unknown:
        raise UserInputError(f"{where}: unknown field {unknown[0]!r} (known: {', '.join(sorted(known))})")
    if not isinstance(data.get("name"), str):
        raise UserInputError(f"{where}: 'name' must be a string")
    for name in LIST_FIELDS:       # a bare string would otherwise be read letter by letter
        if name in data and data[name] is not None and not isinstance(data[name], list):
            raise UserInputError(f"{where}: {name!r} must be a list (e.g. {name}: [{_example(name)}]), "
                                 f"got {data[name]!r}")
    axes = [_axis(a, where) for a in data.get("axes") or []]
    claims = [parse_claim(c, where) for c in data.get("claims") or []]
    spec = SweepSpec(**{**data, "axes": axes, "claims": claims})
    bad = [a for a in spec.algorithms if a not in ALGORITHMS]
    if bad:
        raise UserInputError(f"{where}: unknown algorithm {bad[0]!r} (known: {', '.join(ALGORITHMS)})")
    bad = [h for h in spec.heuristics if h not in baselines.baseline_names("user")]
    if bad:
        raise UserInputError(f"{where}: unknown heuristic {bad[0]!r} (known: "
                             f"{', '.join(baselines.baseline_names('user'))})")
    if not spec.algorithms and not spec.heuristics:
        raise UserInputError(f"{where}: names no algorithm and no heuristic")
    if not spec.seeds or any(not isinstance(s, int) or not 0 <= s <= SEED_MAX for s in spec.seeds) \
            or len(set(spec.seeds)) != len(spec.seeds):
        raise UserInputError(f"{where}: 'seeds' must be distinct integers in 0..{SEED_MAX}")
    points = len(spec.settings())
    for claim in spec.claims:
        if any(not isinstance(i, int) or not 0 <= i < points for i in claim.settings):
            raise UserInputError(f"{where}: claim {claim.text!r}: 'settings' are grid indices 0..{points - 1}")
    for name in ("iterations", "eval_episodes"):
        if not isinstance(getattr(spec, name), int) or getattr(spec, name) < 1:
            raise UserInputError(f"{where}: {name!r} must be an integer >= 1")
    return spec


def _axis(data: Any, where: str) -> Axis:
    if not isinstance(data, dict) or set(data) - {"name", "keys", "values"} or not data.get("keys") \
            or not data.get("values"):
        raise UserInputError(f"{where}: each axis needs 'name', 'keys' (a list) and 'values' (a list), got {data!r}")
    keys = tuple(data["keys"])
    values = tuple(tuple(v) if isinstance(v, list) else v for v in data["values"])
    if len(keys) > 1 and any(not isinstance(v, tuple) or len(v) != len(keys) for v in values):
        raise UserInputError(f"{where}: axis {data.get('name')!r} moves {len(keys)} keys: each value must list "
                             f"{len(keys)} values")
    return Axis(str(data.get("name") or keys[0]), keys, values)
