"""The paper's claims as checks a sweep's results can answer, each with what we measure and a verdict.

A spec's claim is either a sentence (stated, shown, not checked: e.g. an absolute cost in the paper's own
units) or a mapping with the sentence and one check::

    - text: "HC-MAPPO-L −12 % cost against Heuristic-MAPPO-L"
      check: relative                 # mean over settings of (policy − against) / against, seeds bootstrapped
      against: [heuristic-mappo-l]     # or "all": every other policy of the sweep but the room reference
      paper: -0.12                     # one value or a [low, high] range
    - text: "the constrained methods keep the delay under 3 s"
      check: bound                     # each policy's mean per setting against a limit
      policies: [hc-mappo-l, hc-ippo-l]
      metric: delay_s
      below: 3.0                       # or above: …; "tau_bar" is each setting's own limit
    - text: "HC-MAPPO-L success 94 → 99 % as storage grows"
      check: change                    # the policy's metric from the first setting (or `settings`) to the last
      metric: success_rate
      paper: [0.94, 0.99]              # absolute end points; a single number is a relative change

Verdicts never rank by a point estimate alone: a relative claim *holds* when its 95 % interval lies on the
paper's side of zero, is *reversed* when it lies on the other side, and is *not separated* otherwise; the
row also says whether the paper's number lies inside our interval. A bound holds in k of n settings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from common.errors import UserInputError
from optimizer.sweep.room import ROOM
from optimizer.sweep.stats import Interval, relative_difference

FOCUS = "hc-mappo-l"
HEADLINE = "charged_cost"
CHECKS = ("relative", "bound", "change")
TAU_BAR = "tau_bar"


@dataclass(frozen=True)
class Claim:
    text: str
    check: str | None = None          # None: stated only
    policy: str = FOCUS               # relative, change
    against: tuple[str, ...] = ()     # relative (("all",): every other policy but the reference)
    policies: tuple[str, ...] = ()    # bound
    metric: str = HEADLINE
    paper: tuple[float, ...] = ()     # one number or a (low, high) range
    below: float | str | None = None  # bound: a number or "tau_bar"
    above: float | str | None = None
    settings: tuple[int, ...] = ()    # grid indices the check reads; empty: every setting


@dataclass(frozen=True)
class Finding:
    """One row of the claims table: the claim's text, what it was checked on, our number and the verdict."""
    text: str
    subject: str
    measured: str
    verdict: str


def parse_claim(data: Any, where: str) -> Claim:
    if isinstance(data, str):
        return Claim(data)
    if not isinstance(data, dict) or not isinstance(data.get("text"), str):
        raise UserInputError(f"{where}: each claim is a sentence or a mapping with 'text', got {data!r}")
    unknown = sorted(set(data) - set(Claim.__dataclass_fields__))
    if unknown:
        raise UserInputError(f"{where}: claim {data['text']!r}: unknown field {unknown[0]!r}")
    if data.get("check") not in (None, *CHECKS):
        raise UserInputError(f"{where}: claim {data['text']!r}: check must be one of {', '.join(CHECKS)}")
    fields = dict(data)
    for name in ("against", "policies", "paper", "settings"):
        value = fields.get(name, ())
        fields[name] = tuple(value) if isinstance(value, (list, tuple)) else (value,)
    claim = Claim(**fields)
    numbers = all(isinstance(p, (int, float)) and math.isfinite(p) for p in claim.paper)
    if claim.check in ("relative", "change") and (not claim.paper or len(claim.paper) > 2 or not numbers):
        raise UserInputError(f"{where}: claim {claim.text!r}: 'paper' must be a number or a [low, high] pair")
    if claim.check == "relative" and not claim.against:
        raise UserInputError(f"{where}: claim {claim.text!r}: a relative check needs 'against'")
    if claim.check == "bound" and (not claim.policies or (claim.below is None) == (claim.above is None)):
        raise UserInputError(f"{where}: claim {claim.text!r}: a bound needs 'policies' and one of below/above")
    return claim


def judge(claim: Claim, cells: Mapping[str, Mapping[str, Any]], settings: list[str],
          limits: Mapping[str, float], labels: Mapping[str, str] | None = None,
          grid_index: Mapping[str, int] | None = None) -> list[Finding]:
    """The findings of ``claim`` on a sweep's results: ``cells[setting][policy]`` has per-seed (or one)
    values per metric (``.values``), ``.mean(metric)`` and ``.half_width(metric)`` (95 %); ``settings`` the
    settings with results, in grid order; ``limits`` τ̄ each; ``labels`` each setting's axis values as text;
    ``grid_index`` each setting's index in the spec's grid (default: its position in ``settings``), which
    ``claim.settings`` names, so a setting without results never shifts the others."""
    grid_index = grid_index or {s: i for i, s in enumerate(settings)}
    chosen = [s for s in settings if grid_index[s] in claim.settings] if claim.settings else list(settings)
    labels = labels or {s: s for s in settings}
    if claim.check is None:
        return [Finding(claim.text, "", "stated, not checked", "—")]
    if claim.check == "relative":
        return [_relative(claim, cells, chosen, other) for other in _competitors(claim, cells, chosen)]
    if claim.check == "bound":
        return [_bound(claim, cells, chosen, limits, labels, policy) for policy in claim.policies]
    return [_change(claim, cells, chosen)]


def _competitors(claim: Claim, cells, chosen: list[str]) -> list[str]:
    if claim.against != ("all",):
        return list(claim.against)
    present = {p for s in chosen for p in cells.get(s, {})}
    return sorted(present - {claim.policy, ROOM})


def _values(cells, settings: list[str], policy: str, metric: str) -> list[np.ndarray] | None:
    if not settings or any(policy not in cells.get(s, {}) or metric not in cells[s][policy].values for s in settings):
        return None
    return [np.asarray(cells[s][policy].values[metric], dtype=float) for s in settings]


def _side(interval: Interval, paper: tuple[float, ...]) -> str:
    sign = math.copysign(1.0, np.mean(paper))
    low, high = sign * interval.low, sign * interval.high      # the paper's side made positive
    if not (math.isfinite(low) and math.isfinite(high)):
        return "n/a"
    if min(low, high) > 0:
        verdict = "holds"
    elif max(low, high) < 0:
        verdict = "reversed"
    else:
        verdict = "not separated"
    inside = min(paper) <= interval.high and max(paper) >= interval.low
    words = "inside" if inside else "outside"
    return f"{verdict} (the paper's {_percent(paper)} is {words} our interval)"


def _percent(paper: tuple[float, ...]) -> str:
    return "–".join(f"{100 * p:+.1f} %" for p in paper)


def _relative(claim: Claim, cells, chosen: list[str], other: str) -> Finding:
    subject = f"{claim.policy} vs {other}, {claim.metric}, {len(chosen)} settings"
    a, b = _values(cells, chosen, claim.policy, claim.metric), _values(cells, chosen, other, claim.metric)
    if a is None or b is None:
        return Finding(claim.text, subject, "no results", "n/a")
    interval = relative_difference(a, b)
    return Finding(claim.text, subject, interval.text(percent=True), _side(interval, claim.paper))


def _bound(claim: Claim, cells, chosen: list[str], limits, labels, policy: str) -> Finding:
    limit_of = (lambda s: limits[s]) if TAU_BAR in (claim.below, claim.above) else \
        (lambda s: float(claim.below if claim.below is not None else claim.above))
    relation = "≤" if claim.below is not None else "≥"
    target = "τ̄" if TAU_BAR in (claim.below, claim.above) else f"{limit_of(chosen[0]) if chosen else ''}"
    subject = f"{policy}: {claim.metric} {relation} {target}"
    present = [s for s in chosen if policy in cells.get(s, {}) and claim.metric in cells[s][policy].values]
    if not present:
        return Finding(claim.text, subject, "no results", "n/a")
    means = [cells[s][policy].mean(claim.metric) for s in present]
    held = [(m <= limit_of(s)) if claim.below is not None else (m >= limit_of(s)) for s, m in zip(present, means)]
    excess = [m / limit_of(s) - 1 for s, m in zip(present, means)]
    measured = "; ".join(f"{labels[s]}: {m:.3g} ({100 * e:+.0f} %)" for s, m, e in zip(present, means, excess))
    count = sum(held)
    verdict = "holds" if count == len(held) else ("fails" if count == 0 else f"holds in {count} of {len(held)}")
    return Finding(claim.text, subject, measured, f"{verdict} (mean per setting; ± % against the limit)")


def _change(claim: Claim, cells, chosen: list[str]) -> Finding:
    subject = f"{claim.policy}: {claim.metric}, first → last setting"
    ends = _values(cells, [chosen[0], chosen[-1]], claim.policy, claim.metric) if chosen else None
    if ends is None or len(chosen) < 2:
        return Finding(claim.text, subject, "no results", "n/a")
    first, last = ends
    interval = relative_difference([last], [first])
    if len(first) == 1 and len(last) == 1:      # a heuristic: no seeds to resample; its episodes' 95 % CIs
        half = sum(cells[s][claim.policy].half_width(claim.metric) for s in (chosen[0], chosen[-1]))
        half = half / abs(first[0]) if math.isfinite(half) else 0.0
        interval = Interval(interval.value, interval.value - half, interval.value + half, 1)
    measured = f"{first.mean():.4g} → {last.mean():.4g}: {interval.text(percent=True)}"
    paper = claim.paper if len(claim.paper) == 1 else ((claim.paper[1] - claim.paper[0]) / claim.paper[0],)
    return Finding(claim.text, subject, measured, _side(interval, paper))
