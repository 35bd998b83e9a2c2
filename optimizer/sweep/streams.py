"""Are training, calibration and evaluation episodes drawn from one distribution?

Each stream is a family of episode seeds: *training* (``TRAIN_SEED_BASE + seed·10⁶ + episode``, one reset per
episode as the trainer does), *calibration* (the evaluation seed + 1,000,003, as a calibrated heuristic tunes
its λ) and *evaluation* (the evaluation seed, as ``run_episodes`` plays it: a reset with the seed, then
resets that continue its episode counter). A fixed policy plays ``episodes`` episodes of each; if the streams
share one distribution, each metric's means agree within their intervals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from optimizer.algos.hc_mappo_l import TRAIN_SEED_BASE
from optimizer.env import EdgeEnv
from optimizer.evaluate import CALIBRATION_SEED_OFFSET, run_episodes


@dataclass(frozen=True)
class StreamMean:
    stream: str
    metric: str
    mean: float
    se: float          # standard error of the mean over episodes
    n: int


def stream_means(env: EdgeEnv, deployment, user, allocation, episodes: int, eval_seed: int, train_seed: int,
                 metrics: tuple[str, ...]) -> list[StreamMean]:
    """The policy's per-episode metric means on each stream, ``episodes`` episodes each."""
    copies = env.num_envs
    samples: dict[str, dict[str, list[float]]] = {}
    streams = {"evaluation": [eval_seed], "calibration": [eval_seed + CALIBRATION_SEED_OFFSET],
               "training": [TRAIN_SEED_BASE + train_seed * 1_000_000 + e for e in range(-(-episodes // copies))]}
    for name, seeds in streams.items():
        per_round = episodes if name != "training" else copies      # training: a fresh seed per episode batch
        for seed in seeds:
            result = run_episodes(env, deployment, user, allocation, per_round, seed)
            for metric in metrics:
                samples.setdefault(name, {}).setdefault(metric, []).extend(result.samples[metric].tolist())
    out = []
    for name, by_metric in samples.items():
        for metric, values in by_metric.items():
            v = np.asarray(values[:episodes])
            out.append(StreamMean(name, metric, float(v.mean()), float(v.std(ddof=1) / np.sqrt(len(v))), len(v)))
    return out


def largest_gap(means: list[StreamMean], metric: str) -> float:
    """The largest difference between two streams' means in units of their combined standard error."""
    rows = [m for m in means if m.metric == metric]
    return max(abs(a.mean - b.mean) / np.hypot(a.se, b.se) for i, a in enumerate(rows) for b in rows[i + 1:])
