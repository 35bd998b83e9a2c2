"""What fusing could buy: the user update's minibatch step eager against ``torch.compile``, and the
eager per-op floor that bounds any un-fused iteration.

    .venv/bin/python benchmarks/bench_compile.py [--profiles data/profiles] [--repeats 20] [--out FILE.json]

1. *Per-op floor.* Times one tiny op (``torch.add`` on 1,000 float32 values, and ``copy_`` to bf16)
   ``--floor-calls`` times: the dispatcher's cost per op when the arithmetic is nearly nothing.
   Multiplied by the ops an iteration launches (the profile in BENCHMARKS.md: ≈ 87,000) it is the time
   eager PyTorch spends per iteration whatever the arithmetic costs.
2. *The user update step* (38.7 % of an iteration's op time, the largest phase): builds the default
   HC-MAPPO-L trainer on the bundled tables, runs iteration 1 and one rollout, then times one
   minibatch's forward + loss + backward (no optimiser step, so every repeat sees the same weights)
   under bf16 autocast: eager, then the same function through ``torch.compile`` (inductor, CPU C++
   kernels) after its compile. Reports the compile time, both medians and the gradients' largest
   relative difference (compiled bf16 kernels fuse and so round differently).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from optimizer.algos import ppo  # noqa: E402
from optimizer.algos.config import TrainConfig, preset  # noqa: E402
from optimizer.algos.hc_mappo_l import Trainer  # noqa: E402
from optimizer.algos.rollout import RewardSettings, collect  # noqa: E402
from optimizer.algos.runner import load_catalog  # noqa: E402
from common.precision import autocast  # noqa: E402
from optimizer.config import EnvConfig  # noqa: E402


def per_op_floor(calls: int) -> dict[str, float]:
    x, y = torch.randn(1000), torch.randn(1000)
    out = torch.empty(1000, dtype=torch.bfloat16)
    timings = {}
    for name, op in (("add_1000_fp32", lambda: torch.add(x, y)), ("copy_to_bf16_1000", lambda: out.copy_(x))):
        for _ in range(1000):
            op()
        began = time.perf_counter()
        for _ in range(calls):
            op()
        timings[name + "_us"] = (time.perf_counter() - began) / calls * 1e6
    return timings


def user_step(trainer: Trainer, rollout) -> callable:
    """A closure: one minibatch's loss of the user layer, backward, and the gradients (flattened)."""
    cfg, buf = trainer.cfg, rollout.user
    advantage = ppo.standardise(torch.randn_like(buf.reward))
    samples = trainer.agents.user_layer.samples(buf, advantage, torch.zeros_like(buf.reward),
                                                torch.zeros_like(buf.reward))
    idx = next(ppo.minibatches(samples["logp_old"].shape[0], cfg.num_minibatches, trainer.generator))
    batch = {k: v[idx] for k, v in samples.items()}
    params = [p for name in ("user_actor", "user_critics") for p in trainer.agents.modules()[name].parameters()]

    def loss_of(b):
        out = trainer.agents.user_layer.forward(b)
        pg, _ = ppo.clipped_surrogate(out.logp, b["logp_old"], b["advantage"], cfg.clip)
        v = sum(ppo.value_loss(pred, b[f"target_{n}"]) for n, pred in out.values.items())
        return pg - cfg.entropy_user * out.entropy.mean() + cfg.value_coef * v

    def step(fn):
        for p in params:
            p.grad = None
        with autocast(trainer.device, trainer.bf16):
            loss = fn(batch)
        loss.backward()
        return torch.cat([p.grad.flatten() for p in params if p.grad is not None])

    return loss_of, step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", default="data/profiles")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--floor-calls", type=int, default=200_000)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    result = {"machine": platform.processor() or platform.machine(), "torch": torch.__version__,
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    result.update(per_op_floor(args.floor_calls))
    print({k: round(v, 3) for k, v in result.items() if k.endswith("_us")}, flush=True)

    env_cfg = EnvConfig()
    trainer = Trainer(TrainConfig(**{**preset("default"), "tensorboard": False}), env_cfg,
                      load_catalog(args.profiles, env_cfg))
    trainer.train_iteration()
    rewards = RewardSettings(team=True, users=False, migration_weight=0.0, charge_misses=False, lam=trainer.lam)
    with autocast(trainer.device, trainer.bf16):
        rollout = collect(trainer.env, trainer.agents, trainer.norms, trainer.slots, rewards)
    loss_of, step = user_step(trainer, rollout)

    def timed(fn) -> tuple[float, torch.Tensor]:
        times, grads = [], None
        for _ in range(args.repeats):
            began = time.perf_counter()
            grads = step(fn)
            times.append(time.perf_counter() - began)
        return statistics.median(times[2:]), grads

    eager_s, eager_grad = timed(loss_of)
    compiled = torch.compile(loss_of)
    began = time.perf_counter()
    step(compiled)
    compile_s = time.perf_counter() - began
    compiled_s, compiled_grad = timed(compiled)
    eager2_s, _ = timed(loss_of)
    rel = float(((compiled_grad - eager_grad).abs().max() / eager_grad.abs().max()))
    result.update(eager_ms=eager_s * 1e3, eager_again_ms=eager2_s * 1e3, compiled_ms=compiled_s * 1e3,
                  compile_s=compile_s, speedup=min(eager_s, eager2_s) / compiled_s, grad_max_rel_diff=rel)
    print(json.dumps(result, indent=1))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
