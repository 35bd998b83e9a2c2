"""Statistics for few seeds, as rliable computes them (Agarwal et al., NeurIPS 2021), over a sweep's settings.

- :func:`relative_difference`: the mean over settings of (A − B) / B for a metric, with a *stratified*
  bootstrap 95 % interval: each resample draws, within every setting, seeds with replacement (a policy
  without seeds, a heuristic, keeps its one value), so the interval says how much the seeds alone move it.
- :func:`probability_of_improvement`: P(A < B) for a lower-is-better metric, the Mann–Whitney statistic over
  seed pairs in each setting (ties count ½), averaged over settings; with a stratified bootstrap interval.

Each result states ``n``, the seeds behind it, so a figure from two seeds is read as one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RESAMPLES = 2000


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float
    n: int                  # seeds per setting behind A (the fewest over settings)

    def text(self, percent: bool = False) -> str:
        scale, unit = (100.0, " %") if percent else (1.0, "")
        if not np.isfinite(self.value):
            return "n/a"
        return f"{scale * self.value:+.1f}{unit} [{scale * self.low:+.1f}, {scale * self.high:+.1f}] (n = {self.n})" \
            if percent else f"{self.value:.2f} [{self.low:.2f}, {self.high:.2f}] (n = {self.n})"


def _resample(values: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    return [v[rng.integers(0, len(v), len(v))] if len(v) > 1 else v for v in values]


def _bootstrap(statistic, a: list[np.ndarray], b: list[np.ndarray], seed: int) -> Interval:
    value = statistic(a, b)
    rng = np.random.default_rng(seed)
    draws = np.array([statistic(_resample(a, rng), _resample(b, rng)) for _ in range(RESAMPLES)])
    low, high = np.nanpercentile(draws, [2.5, 97.5]) if np.isfinite(draws).any() else (np.nan, np.nan)
    return Interval(float(value), float(low), float(high), min(len(x) for x in a))


def relative_difference(a: list[np.ndarray], b: list[np.ndarray], seed: int = 0) -> Interval:
    """Mean over settings of (mean A − mean B) / mean B; ``a[s]``, ``b[s]``: the per-seed values in setting s."""
    def statistic(x, y):
        return float(np.mean([(xs.mean() - ys.mean()) / ys.mean() for xs, ys in zip(x, y)]))
    return _bootstrap(statistic, a, b, seed)


def probability_of_improvement(a: list[np.ndarray], b: list[np.ndarray], seed: int = 0) -> Interval:
    """P(A < B) averaged over settings (lower is better): Mann–Whitney over seed pairs, ties ½."""
    def statistic(x, y):
        return float(np.mean([((xs[:, None] < ys[None, :]) + 0.5 * (xs[:, None] == ys[None, :])).mean()
                              for xs, ys in zip(x, y)]))
    return _bootstrap(statistic, a, b, seed)
