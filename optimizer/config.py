"""Configuration of the CMDP environment: one dataclass tree, defaults = paper Table I plus the conventions
of README "Environment conventions".

Every constant of the system model lives here, with its unit in its name. A config is built from the
defaults, then a YAML or TOML file, then ``--set a.b=value`` overrides, each checked against the
field's type (an unknown key or a value of the wrong type is refused with one clear line)::

    cfg = build_config(EvaluateConfig, path="exp.yaml", overrides=["env.num_users=80"])

Ranges drawn uniformly per copy at reset are ``(low, high)`` pairs. YAML reads ``1e-11`` as a string
(PyYAML follows YAML 1.1); :func:`from_dict` converts such strings to float where a float is expected,
and refuses ``nan`` and ``±inf`` there (a non-finite learning rate or cost weight poisons every update).

The generic helpers (:func:`from_dict`, :func:`load_file`, :func:`apply_overrides`, :func:`build_config`)
work for any dataclass tree, so the trainer's config can nest :class:`EnvConfig` and reuse them.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from common.errors import UserInputError
from common.files import read_text
from common.limits import SEED_MAX, check_at_most

# Far above the paper's scales (J ≤ 20 servers, K ≤ 200 users, 200-slot episodes; common/limits.py).
ENV_SIZE_LIMITS = {"num_servers": 1024, "num_users": 100_000, "services_per_model": 1024,
                   "slots_per_episode": 10**7, "delta_t": 10**7}
INPUT_BATCH_MAX = 4096
EVALUATE_LIMITS = {"episodes": 10**5, "seed": SEED_MAX, "num_envs": 4096, "lagrangian_calibration_episodes": 10**4,
                   "lagrangian_bisection_steps": 64}


Range = tuple[float, float]


def _check_range(owner: str, name: str, value: Range, minimum: float = 0.0,
                 strict: bool = False) -> None:
    low, high = value
    bad_low = low <= minimum if strict else low < minimum
    if bad_low or high < low or not math.isfinite(high):
        rel = ">" if strict else ">="
        floor = f"low {rel} {minimum:g} and " if math.isfinite(minimum) else ""
        raise UserInputError(f"config {owner}.{name}: range {list(value)!r} must have {floor}low <= high")


def _check_positive(owner: str, name: str, value: float, allow_zero: bool = False) -> None:
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        rel = ">= 0" if allow_zero else "> 0"
        raise UserInputError(f"config {owner}.{name}: must be {rel}, got {value!r}")


@dataclass
class ChannelConfig:
    """Wireless channel (Sec. III-C, Table I): g_{j,k} = 10^(-PL/10), PL in dB.

    PL(d) = path_loss_ref_db + 10·path_loss_exponent·log10(d / 1 m) + X, X ~ N(0, shadowing_std_db²)
    drawn per (server, user) every slot (quasi-static within a slot). The reference loss at 1 m
    (30 dB) already reflects the 3.5 GHz carrier, which is kept for the record only.
    Noise σ² [dBm] = noise_psd_dbm_per_hz + 10·log10(B_{j,k}) + noise_figure_db.
    """
    path_loss_ref_db: float = 30.0
    path_loss_exponent: float = 3.5
    shadowing_std_db: float = 8.0
    carrier_hz: float = 3.5e9
    noise_psd_dbm_per_hz: float = -174.0
    noise_figure_db: float = 6.0
    min_distance_m: float = 1.0
    server_power_dbm: Range = (30.0, 43.0)
    user_power_dbm: Range = (20.0, 30.0)

    def __post_init__(self) -> None:
        _check_positive("env.channel", "path_loss_exponent", self.path_loss_exponent)
        _check_positive("env.channel", "shadowing_std_db", self.shadowing_std_db, allow_zero=True)
        _check_positive("env.channel", "min_distance_m", self.min_distance_m)
        _check_positive("env.channel", "carrier_hz", self.carrier_hz)
        for name in ("server_power_dbm", "user_power_dbm"):
            _check_range("env.channel", name, getattr(self, name), minimum=-math.inf)


@dataclass
class CapacityConfig:
    """Capacities drawn uniformly per copy at reset (Table I). Compute in FLOP/s, storage in bytes,
    bandwidth in Hz, ε in J/FLOP, R^C2E in bit/s."""
    user_flops: Range = (10e9, 100e9)
    server_flops: Range = (500e9, 2000e9)
    server_storage_bytes: Range = (3e9, 5e9)
    user_storage_bytes: Range = (1e9, 2e9)
    server_bandwidth_hz: Range = (50e6, 100e6)
    energy_j_per_flop: Range = (1e-11, 1e-9)
    privacy_preference: Range = (0.2, 0.8)
    cloud_rate_bps: Range = (200e6, 500e6)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            _check_range("env.capacity", f.name, getattr(self, f.name),
                         strict=f.name not in ("privacy_preference", "energy_j_per_flop"))
        low, high = self.privacy_preference
        if high > 1.0:
            raise UserInputError(f"config env.capacity.privacy_preference: Pre_k must lie in [0, 1], "
                                 f"got {[low, high]!r}")


@dataclass
class CostConfig:
    """Objective and constraint (eq. 10–12, C8, eq. 25–27). README "Environment conventions" has the
    measurements behind the two choices the paper leaves open:

    - ``privacy_bytes_scale`` multiplies D_raw (bytes) in eq. 10: 1.5e-5, 1.5× the scale of the paper's
      published configuration (input size in KB × 0.01). A 224×224×3 float image (602 112 B) with D^in = 8,
      Lea = 1, Pre = 0.5 costs 1.25·8·9.0 ≈ 90. At 1e-6 (D_raw in MB) Edge-Only was within 4 % of the best
      heuristic and the delay limit never bound: nothing to trade. On the bundled 400 × 64 leakage tables
      the limit binds at r = 1 only from 1.5e-5 (1e-5: the λ = 0 optimum runs at 2.69 s, under τ̄), the
      smallest scale on a grid fixed before calibrating (BENCHMARKS.md, "Re-calibration for the 400 × 64
      tables").
    - ``accuracy_weight`` (ω_acc, ours; with ``env.defenses`` only): a defense that costs accuracy Δacc is
      charged ω_acc · D^in · Δacc, the expected misclassified images of the request at ω_acc each (100 ≈ the
      charged cost of a mean request at the default). Without defenses every Δacc is 0 and nothing changes.
    - ``leakage_measure``: ``"above_floor"`` charges Lea = (SSIM − floor)/(1 − floor), the reconstruction
      quality an attacker gains over the no-information floor (the bundled floors are 0.19 on Fashion-MNIST
      and 0.42 on the 64-px photographs, so raw SSIM charges 20–40 % of the raw input's privacy for a feature
      that reveals nothing); ``"ssim"`` is eq. 3.
    """
    alpha1: float = 0.31
    alpha2: float = 1.88
    privacy_bytes_scale: float = 1.5e-5
    leakage_measure: Literal["ssim", "above_floor"] = "above_floor"
    mu1: float = 5.0
    mu2: float = 5.0
    delay_limit_s: float = 3.0
    accuracy_weight: float = 100.0     # ω_acc: cost of one misclassified image (only with env.defenses)

    def __post_init__(self) -> None:
        for name in ("alpha1", "alpha2", "mu1", "mu2", "accuracy_weight"):
            _check_positive("env.cost", name, getattr(self, name), allow_zero=True)
        _check_positive("env.cost", "privacy_bytes_scale", self.privacy_bytes_scale)
        _check_positive("env.cost", "delay_limit_s", self.delay_limit_s)


@dataclass
class RewardConfig:
    """Reward shaping constants the paper leaves open (eq. 24–25), chosen here.

    - ``tau_fail_s`` (τ_fail, eq. 5) = 10·τ̄: "prohibitively large" against the 3 s limit.
    - ``mu3`` weighs the delay excess [τ_k − τ̄]_+ in seconds against cost units (eq. 25).
    - ``reward_fail`` (R^fail) = −300 lies below −μ3·(τ_fail − τ̄) = −270 (checked in ``EnvConfig``). A time-out
      earns R^fail − μ1 C^priv − μ2 e (it is charged what its action spent), so it always earns less than the
      same action finishing at τ_fail would: failing never pays. A cache miss (nothing ran) earns R^fail.
    - ``mu_hit`` per hit and ``mu_mig`` per second of cloud-to-edge download (eq. 24): a ΔT period
      has ≈ K·ΔT/J = 50 requests per server and fetching a VGG-19 takes ≈ 13 s at 350 Mbit/s.
    """
    tau_fail_s: float = 30.0
    mu3: float = 10.0
    reward_fail: float = -300.0
    mu_hit: float = 1.0
    mu_mig: float = 1.0

    def __post_init__(self) -> None:
        for name in ("tau_fail_s", "mu3", "mu_hit", "mu_mig"):
            _check_positive("env.reward", name, getattr(self, name), allow_zero=name != "tau_fail_s")


@dataclass
class EnvConfig:
    """The edge-device collaborative inference CMDP (Sec. III). Defaults are Table I.

    ``compute_unit`` picks the workload Ω of the profiles: "flops" (= 2 × MACs, matches capacities
    in FLOP/s; default) or "macs" (for comparison with work that counted MACs as FLOPs).
    ``user_cache``: users keep an LRU cache of downloaded device-side parameters in their storage;
    a hit skips the download τ^E2U. ``mask_servers_without_service``: the user server mask only
    allows servers hosting the requested service (all servers when none does).
    ``observe_channel`` appends the J per-server channel gains (dB, scaled) to the user observation.
    ``defenses`` offers, beside each split point, the defense options priced in the profile tables
    (``python cli.py defend``; :mod:`optimizer.env.defense_options`) as further choices of the user's
    split action, charged their accuracy drop (``cost.accuracy_weight``); off by default.
    """
    num_servers: int = 10
    num_users: int = 50
    services_per_model: int = 5
    zipf_s: float = 0.8
    input_batch: tuple[int, int] = (1, 16)
    area_m: float = 1000.0
    slots_per_episode: int = 200
    delta_t: int = 10
    compute_unit: Literal["flops", "macs"] = "flops"
    user_cache: bool = True
    mask_servers_without_service: bool = True
    observe_channel: bool = True
    defenses: bool = False
    channel: ChannelConfig = field(default_factory=ChannelConfig)
    capacity: CapacityConfig = field(default_factory=CapacityConfig)
    cost: CostConfig = field(default_factory=CostConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)

    def __post_init__(self) -> None:
        for name in ("num_servers", "num_users", "services_per_model", "slots_per_episode", "delta_t"):
            value = getattr(self, name)
            if value < 1:
                raise UserInputError(f"config env.{name}: must be >= 1, got {value!r}")
        check_at_most(self, ENV_SIZE_LIMITS, "config env.")
        _check_positive("env", "zipf_s", self.zipf_s, allow_zero=True)
        _check_positive("env", "area_m", self.area_m)
        low, high = self.input_batch
        if low < 1 or high < low:
            raise UserInputError(f"config env.input_batch: must be [low, high] with 1 <= low <= high, "
                                 f"got {list(self.input_batch)!r}")
        if high > INPUT_BATCH_MAX:
            raise UserInputError(f"config env.input_batch: must be at most {INPUT_BATCH_MAX:,}, "
                                 f"got {list(self.input_batch)!r}")
        worst_delay_penalty = self.reward.mu3 * max(self.reward.tau_fail_s - self.cost.delay_limit_s, 0.0)
        if self.reward.reward_fail > -worst_delay_penalty:
            raise UserInputError(
                f"config env.reward.reward_fail: must be <= -mu3 * (tau_fail_s - delay_limit_s) = "
                f"{-worst_delay_penalty:g}, got {self.reward.reward_fail!r} (else timing out pays better "
                "than a slow success)")


@dataclass
class EvaluateConfig:
    """Root config of ``cli.py evaluate``: the environment plus the evaluation protocol.

    A calibrated heuristic's λ is the smallest whose *upper* one-sided 95 % confidence bound of the mean
    delay over ``lagrangian_calibration_episodes`` episodes (seeds apart from the evaluation's) meets τ̄:
    tuned to the calibration mean alone it met τ̄ on fresh seeds only about half the time (measured:
    3.17–3.36 s on four calibrations aimed at 3 s, BENCHMARKS.md "Environment calibration").
    """
    env: EnvConfig = field(default_factory=EnvConfig)
    episodes: int = 5
    seed: int = 0
    num_envs: int = 5
    lagrangian_calibration_episodes: int = 8
    lagrangian_bisection_steps: int = 6

    def __post_init__(self) -> None:
        for name in ("episodes", "num_envs", "lagrangian_calibration_episodes",
                     "lagrangian_bisection_steps"):
            if getattr(self, name) < 1:
                raise UserInputError(f"config {name}: must be >= 1, got {getattr(self, name)!r}")
        if self.seed < 0:
            raise UserInputError(f"config seed: must be >= 0, got {self.seed!r}")
        check_at_most(self, EVALUATE_LIMITS)


# ---------------------------------------------------------------- generic loading and overrides


def _number(value: Any) -> float | None:
    """``value`` as a float, or ``None`` if it is no number (a bool is none; PyYAML reads ``1e-11``, with no
    dot, as a string, which is read here)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        try:
            return float(value)
        except OverflowError:      # an int beyond float range
            return math.inf
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Convert ``value`` to the type ``hint`` or raise naming ``key``."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        allowed = typing.get_args(hint)
        if value not in allowed:
            raise UserInputError(f"config {key}: must be one of {list(allowed)}, got {value!r}")
        return value
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise UserInputError(f"config {key}: must be a list of {len(args)} values [low, high], "
                                 f"got {value!r}")
        return tuple(_coerce(v, a, key) for v, a in zip(value, args))
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise UserInputError(f"config {key}: must be true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise UserInputError(f"config {key}: must be an integer, got {value!r}")
    if hint is float:
        number = _number(value)
        if number is None:
            raise UserInputError(f"config {key}: must be a number, got {value!r}")
        if not math.isfinite(number):   # nan and ±inf (YAML .nan/.inf, "nan", 1e400) poison every update
            raise UserInputError(f"config {key}: must be a finite number, got {value!r}")
        return number
    if hint is str:
        if isinstance(value, str):
            return value
        raise UserInputError(f"config {key}: must be a string, got {value!r}")
    raise TypeError(f"config {key}: unsupported field type {hint!r}")


def from_dict(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    """Build dataclass ``cls`` from nested ``data``; missing keys keep their defaults.

    Unknown keys and wrongly typed values raise :class:`UserInputError` naming the dotted key.
    """
    if not isinstance(data, dict):
        raise UserInputError(f"config {prefix.rstrip('.') or '<root>'}: must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        dotted = prefix + str(key)
        if key not in names:
            raise UserInputError(f"config {dotted}: unknown key; allowed here: {sorted(names)}")
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = from_dict(hint, value, dotted + ".")
        else:
            kwargs[key] = _coerce(value, hint, dotted)
    return cls(**kwargs)


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain nested dict of a config (tuples become lists), for saving next to results."""
    def plain(v: Any) -> Any:
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v
    return plain(dataclasses.asdict(cfg))


def load_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML (``.yaml``/``.yml``) or TOML (``.toml``) config file into a nested dict."""
    path = Path(path)
    text = read_text(path, "config")
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            data = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text) or {}
        else:
            raise UserInputError(f"{path}: config must end in .yaml, .yml or .toml")
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        raise UserInputError(f"{path}: cannot parse config ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise UserInputError(f"{path}: config must be a mapping at the top level")
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"env.cost.mu1=5"`` → (["env", "cost", "mu1"], 5). The value is read as YAML (``[1, 2]``,
    ``true``, ``1e-11`` all work; strings stay strings)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise UserInputError(f"--set {text!r}: expected key=value, e.g. env.num_users=80")
    try:
        value = yaml.safe_load(raw) if raw.strip() else raw
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def apply_overrides(data: dict[str, Any], overrides: typing.Iterable[str]) -> dict[str, Any]:
    """Merge ``key.path=value`` strings into the nested dict ``data`` (a new dict is returned)."""
    merged = _deep_copy(data)
    for text in overrides:
        path, value = parse_override(text)
        node = merged
        for depth, part in enumerate(path[:-1], start=1):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise UserInputError(f"config {'.'.join(path[:depth])}: is a value ({child!r}), not a section, "
                                     f"so --set {text!r} cannot apply")
            node = child
        node[path[-1]] = value
    return merged


def _deep_copy(data: dict[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in data.items()}


def build_config(cls: type, path: str | os.PathLike | None = None,
                 overrides: typing.Iterable[str] = ()) -> Any:
    """Defaults ← file (YAML/TOML) ← ``--set`` overrides, type-checked, as dataclass ``cls``."""
    data = load_file(path) if path else {}
    return from_dict(cls, apply_overrides(data, overrides))
