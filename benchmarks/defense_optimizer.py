"""The optimizer choosing defenses: the Lagrangian heuristic and HC-MAPPO-L with and without
``env.defenses`` at the default setting, on the same held-out episodes (BENCHMARKS.md, "Defenses").

    .venv/bin/python benchmarks/defense_optimizer.py --iterations 100 --out results/defenses/optimizer

Per policy and switch: charged cost (eq. 12 + accuracy cost, failures at C^fail) with its 95 % CI over
episodes, eq. 12 user cost, delay, success, and what the users chose: the share of requests sent through
a defense option, over all requests and over those of models that offer options, the mean accuracy drop
of the chosen columns, and the three options chosen most. HC-MAPPO-L is trained by ``cli.py train`` (a
finished run in OUT is reused, so a rerun only evaluates); the heuristic's λ is calibrated per switch.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from optimizer import baselines  # noqa: E402
from optimizer.algos.trained import load_trained  # noqa: E402
from optimizer.config import EvaluateConfig  # noqa: E402
from optimizer.env import EdgeEnv, ServiceCatalog  # noqa: E402
from optimizer.evaluate import evaluate_baseline, run_episodes, summarise  # noqa: E402

METRICS = ("charged_cost", "user_cost", "delay_s", "success_rate")


class Recorder:
    """A user policy that remembers which columns its inner policy chose."""

    def __init__(self, inner) -> None:
        self.inner, self.choices = inner, Counter()
        self.requests = self.defended = self.offered = self.offered_defended = 0
        self.drop_sum = 0.0

    def reset(self, seed: int) -> None:
        if hasattr(self.inner, "reset"):
            self.inner.reset(seed)

    def act(self, env: EdgeEnv, obs):
        server, split = self.inner.act(env, obs)
        cat = env.catalog
        service = env.request_service
        defended = cat.defended[service, split]
        offers = cat.defended[service].any(-1)
        self.requests += service.numel()
        self.defended += int(defended.sum())
        self.offered += int(offers.sum())
        self.offered_defended += int((defended & offers).sum())
        if cat.has_defenses:
            self.drop_sum += float(cat.accuracy_drop[service, split].sum())
            for i, z in zip(service[defended].tolist(), split[defended].tolist()):
                model = cat.model_names[int(cat.service_model[i])]
                self.choices[f"{model} {cat.choice_labels[int(cat.service_model[i])][z]}"] += 1
        return server, split

    def stats(self) -> dict:
        return {"defended_share": self.defended / max(1, self.requests),
                "defended_share_where_offered": self.offered_defended / max(1, self.offered),
                "offered_share": self.offered / max(1, self.requests),
                "mean_accuracy_drop": self.drop_sum / max(1, self.requests),
                "top_choices": self.choices.most_common(3)}


def _env(cfg: EvaluateConfig, profiles: str, defenses: bool) -> EdgeEnv:
    cfg.env.defenses = defenses
    catalog = ServiceCatalog.from_profiles(profiles, cfg.env.services_per_model, cfg.env.compute_unit, defenses)
    return EdgeEnv(cfg.env, catalog, num_envs=cfg.num_envs, seed=cfg.seed)


def _row(samples: dict) -> dict:
    out = {}
    for m in METRICS:
        s = summarise(samples[m])
        out[m] = {"mean": s.mean, "ci95": [s.mean - s.ci95, s.mean + s.ci95], "n": s.n}
    return out


def lagrangian(cfg: EvaluateConfig, profiles: str, defenses: bool, episodes: int, seed: int) -> dict:
    env = _env(cfg, profiles, defenses)
    result = evaluate_baseline("lagrangian", env, episodes, seed)
    lam = float(result.extra.get("lambda", 0.0))
    recorder = Recorder(baselines.make_baseline("user", "lagrangian", lam, seed))
    again = run_episodes(env, baselines.make_baseline("deployment", "popularity"), recorder,
                         baselines.make_baseline("allocation", "best"), episodes, seed)
    assert np.allclose(again.samples["charged_cost"], result.samples["charged_cost"])   # the same episodes
    return {"policy": "lagrangian", "defenses": defenses, "lambda": lam, **_row(result.samples), **recorder.stats()}


def learned(run_dir: Path, profiles: str, defenses: bool, iterations: int, episodes: int, seed: int) -> dict:
    if not (run_dir / "checkpoint.pt").is_file() and not (run_dir / "actors.pt").is_file():
        subprocess.run([sys.executable, str(ROOT / "cli.py"), "train", "--algo", "hc-mappo-l", "--profiles", profiles,
                        "--iterations", str(iterations), "--seed", "0", "--threads", "1", "--out", str(run_dir),
                        "--set", f"env.defenses={'true' if defenses else 'false'}"], check=True)
    run = load_trained(run_dir)
    cfg = EvaluateConfig(env=run.env_config)
    env = EdgeEnv(cfg.env, ServiceCatalog.from_profiles(profiles, cfg.env.services_per_model, cfg.env.compute_unit,
                                                        cfg.env.defenses), num_envs=cfg.num_envs, seed=cfg.seed)
    run.check_fits(env, str(run_dir))
    recorder = Recorder(run.user)
    result = run_episodes(env, run.deployment, recorder, run.allocation, episodes, seed)
    return {"policy": f"hc-mappo-l ({iterations} it.)", "defenses": defenses, **_row(result.samples), **recorder.stats()}


def markdown(rows: list[dict]) -> str:
    lines = ["| policy | defenses | cost, fails charged | user cost | delay (s) | success | defended (all / where offered) "
             "| mean Δacc | chosen most |", "|" + "---|" * 9]
    for r in rows:
        c = r["charged_cost"]
        top = ", ".join(f"{name} ({n})" for name, n in r["top_choices"]) or "–"
        lines.append(f"| {r['policy']} | {'on' if r['defenses'] else 'off'} | {c['mean']:.1f} [{c['ci95'][0]:.1f}, "
                     f"{c['ci95'][1]:.1f}] | {r['user_cost']['mean']:.1f} | {r['delay_s']['mean']:.2f} "
                     f"| {r['success_rate']['mean']:.3f} | {100 * r['defended_share']:.2f} % / "
                     f"{100 * r['defended_share_where_offered']:.2f} % | {r['mean_accuracy_drop']:.4f} | {top} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", default=str(ROOT / "data" / "profiles"))
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=4242)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "defenses" / "optimizer")
    parser.add_argument("--skip-learned", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = [lagrangian(EvaluateConfig(), args.profiles, on, args.episodes, args.seed) for on in (False, True)]
    if not args.skip_learned:
        rows += [learned(args.out / f"hc-mappo-l-{'on' if on else 'off'}", args.profiles, on, args.iterations,
                         args.episodes, args.seed) for on in (False, True)]
    (args.out / "table.json").write_text(json.dumps(rows, indent=1) + "\n")
    (args.out / "table.md").write_text(markdown(rows) + "\n")
    print(markdown(rows))


if __name__ == "__main__":
    main()
