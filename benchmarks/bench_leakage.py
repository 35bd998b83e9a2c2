"""Benchmark of the leakage attack: decoder-training throughput per split point, and the wall time of
``cli.py leakage --budget quick`` (resnet18 and vgg16 at 64×64 by default).

    .venv/bin/python benchmarks/bench_leakage.py                       # throughput + wall time, CPU
    .venv/bin/python benchmarks/bench_leakage.py --skip-wall --steps 10
    .venv/bin/python benchmarks/bench_leakage.py --device cuda         # on a lent GPU
    .venv/bin/python benchmarks/bench_leakage.py --convergence --splits 1,6   # quick vs 4× its steps
    .venv/bin/python benchmarks/bench_leakage.py --known-answers              # identity, 8×8 image vs vector

Convergence (``--convergence``): for each split of ``--splits`` (resnet18 at 64 px by default), the quick
budget's decoder and one trained 4× as many steps on the same images and seed; prints the test SSIM of
both, their difference, and the quick run's stored convergence figure (held-out auxiliary SSIM gain over
the second half of training).

Throughput: images/s of decoder training (forward + backward + Adam, batch 32) on cached features,
the median of ``--repeats`` timed blocks of ``--steps`` steps after one warm-up block, in bf16 autocast
and in fp32. Wall time: the full command in a subprocess against a temporary copy of a freshly
generated profile (``profile --no-latency``). Prints a Markdown block for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common.devices import resolve_device  # noqa: E402
from common.precision import use_bf16  # noqa: E402
from inversion.attack import TrainConfig, attack_split, pixel_loss  # noqa: E402
from inversion.config import BUDGETS  # noqa: E402
from inversion.data import Normalizer, embedded, victim_input  # noqa: E402
from inversion.decoder import Decoder, FeatureStandardizer  # noqa: E402
from inversion.features import SplitFeatures, autocast, iter_split_features  # noqa: E402
from profiler.graph import split_model  # noqa: E402
from profiler.zoo import load_model  # noqa: E402


def decoder_throughput(features, targets, image_size: int, device: torch.device, bf16: bool, steps: int,
                       repeats: int, batch: int = 32) -> float:
    """Median images/s of decoder training steps on cached features."""
    config = TrainConfig(steps=steps, batch_size=batch)
    decoder = Decoder(tuple(features.shape[1:]), image_size, FeatureStandardizer.fit(features),
                      config.decoder).to(device)
    optimizer = torch.optim.Adam(decoder.parameter_groups(config.lr), lr=config.lr)
    feats, targets = features.to(device), targets.to(device)

    def block() -> float:
        started = time.perf_counter()
        for step in range(steps):
            idx = torch.randint(0, len(feats), (batch,), device=device)
            with autocast(device, bf16):
                recon = decoder(feats[idx].float())
            loss, _ = pixel_loss(recon, targets[idx], config)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return steps * batch / (time.perf_counter() - started)

    block()  # warm-up (kernel selection, allocator)
    return statistics.median(block() for _ in range(repeats))


def throughput_rows(model_name: str, image_size: int, device: torch.device, steps: int, repeats: int) -> list[str]:
    loaded = load_model(model_name)
    model = split_model(loaded.model).to(device)
    images = embedded(image_size, n_train=256, n_test=8, seed=0)
    norm = Normalizer()
    splits = list(range(1, model.num_units))
    rows = []
    for feats in iter_split_features(model, norm.normalize(images.train), norm.normalize(images.test), splits,
                                     device, cache_bytes=1 << 30):
        bf = decoder_throughput(feats.train, images.train, image_size, device, True, steps, repeats)
        fp = decoder_throughput(feats.train, images.train, image_size, device, False, steps, repeats)
        shape = "×".join(str(d) for d in feats.shape)
        rows.append(f"| {model_name} | {feats.split} | {model.units[feats.split - 1].name} | {shape} | "
                    f"{bf:.0f} | {fp:.0f} | {bf / fp:.2f} |")
        print(rows[-1], flush=True)
    return rows


def _quick_from_results(path: Path, z: int) -> tuple[float, float, float] | None:
    """(SSIM, gain over the 2nd half, seconds) of split z from a quick run's results.json, if it has it."""
    import json

    try:
        entry = json.loads(path.read_text())["splits"][str(z)]
        return entry["ssim"], entry["convergence"]["gain_last_half"], entry["train_seconds"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def convergence_rows(model_name: str, image_size: int, device: torch.device, splits: list[int],
                     factor: int = 4, quick_results: Path | None = None) -> list[str]:
    """Quick budget vs ``factor`` × its steps, same images and seed, per split. ``quick_results``: a
    results.json of ``leakage --budget quick --seed 0`` with the same image size, whose quick numbers
    are reused (same images, seed and code path) instead of training the quick decoder again."""
    preset = BUDGETS["quick"]
    loaded = load_model(model_name)
    model = split_model(loaded.model).to(device)
    images = embedded(image_size, preset.n_train, preset.n_test, seed=0)
    bf16 = use_bf16(device, "auto")
    rows = []
    for feats in iter_split_features(model, victim_input(images.train, 3), victim_input(images.test, 3), splits,
                                     device, cache_bytes=1 << 30, bf16=bf16):
        out = {}
        reused = _quick_from_results(quick_results, feats.split) if quick_results else None
        for steps in (preset.steps, factor * preset.steps):
            if steps == preset.steps and reused is not None:
                out[steps] = reused
                continue
            started = time.perf_counter()
            config = TrainConfig(steps=steps, batch_size=preset.batch_size)
            outcome = attack_split(feats, images.train, images.test, config, device,
                                   seed=feats.split, bf16=bf16)
            out[steps] = (outcome.leakage.ssim.mean, outcome.convergence.gain_last_half,
                          time.perf_counter() - started)
        (q, q_gain, q_s), (long, _, l_s) = out[preset.steps], out[factor * preset.steps]
        shape = "×".join(str(d) for d in feats.sent_shape)
        rows.append(f"| {model_name} | {feats.split} | {shape} | {q:.3f} | {q_gain:+.3f} | {q_s:.0f} s | "
                    f"{long:.3f} | {l_s:.0f} s | {long - q:+.3f} |")
        print(rows[-1], flush=True)
    return rows


def known_answer_rows(image_size: int, device: torch.device) -> list[str]:
    """Quick budget on features whose information is known: the image through a full-rank 1×1 map
    (identity-like), an 8×8×3 average-pooled image, and the same 192 numbers scrambled into a vector."""
    preset = BUDGETS["quick"]
    images = embedded(image_size, preset.n_train, preset.n_test, seed=0)
    mix = torch.randn(10, 3, 1, 1, generator=torch.Generator().manual_seed(0))
    order = torch.randperm(192, generator=torch.Generator().manual_seed(1))
    pool = lambda x: torch.nn.functional.avg_pool2d(Normalizer().normalize(x), image_size // 8)  # noqa: E731
    cases = {"identity-like (1×1 map to 10 channels)": lambda x: torch.nn.functional.conv2d(
                 Normalizer().normalize(x), mix),
             "8×8×3 average-pooled image": pool,
             "the same 192 numbers, scrambled vector": lambda x: pool(x).flatten(1)[:, order]}
    rows = []
    for name, feature in cases.items():
        feats = SplitFeatures(1, feature(images.train), feature(images.test))
        started = time.perf_counter()
        config = TrainConfig(steps=preset.steps, batch_size=preset.batch_size)
        outcome = attack_split(feats, images.train, images.test, config, device, seed=0,
                               bf16=use_bf16(device, "auto"))
        ci = outcome.leakage.ssim.ci95
        rows.append(f"| {name} | {'×'.join(str(d) for d in feats.shape)} | {outcome.leakage.ssim.mean:.3f} "
                    f"[{ci[0]:.3f}, {ci[1]:.3f}] | {outcome.convergence.gain_last_half:+.3f} | "
                    f"{time.perf_counter() - started:.0f} s |")
        print(rows[-1], flush=True)
    return rows


def wall_time(model_name: str, image_size: int, device: str, workdir: Path) -> tuple[float, str]:
    profile = workdir / f"{model_name}.json"
    subprocess.run([sys.executable, "cli.py", "profile", model_name, "--format", "json", "--out", str(profile),
                    "--no-latency"], cwd=ROOT, check=True, capture_output=True)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "cli.py", "leakage", "--model", model_name, "--budget", "quick",
                           "--image-size", str(image_size), "--device", device, "--profile", str(profile),
                           "--out", str(workdir / f"run_{model_name}")],
                          cwd=ROOT, check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    first = [line for line in done.stdout.splitlines() if line.strip().startswith("1 ")]
    return seconds, first[0].split()[3] if first else "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet18,vgg16")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-wall", action="store_true")
    parser.add_argument("--convergence", action="store_true", help="only the quick-vs-4x comparison")
    parser.add_argument("--splits", default="1,6", help="split points for --convergence")
    parser.add_argument("--quick-results", type=Path, help="--convergence: reuse the quick numbers of this "
                        "results.json (leakage --budget quick --seed 0 at the same image size)")
    parser.add_argument("--known-answers", action="store_true", help="only the known-answer features")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    models = [m for m in args.models.split(",") if m]
    load = os.getloadavg()[0]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}, "
          f"device {device}, load average {load:.1f} at start, {dt.datetime.now():%Y-%m-%d %H:%M}")
    if args.known_answers:
        print(f"| feature ({args.image_size} px, quick) | shape | SSIM [95 % CI] | gain 2nd half | time |\n"
              "|---|---|---|---|---|")
        known_answer_rows(args.image_size, device)
        return
    if args.convergence:
        print(f"| model | z | feature | quick SSIM ({BUDGETS['quick'].steps} steps) | its gain 2nd half | time | "
              f"4x steps SSIM | time | 4x minus quick |\n|---|---|---|---|---|---|---|---|---|")
        for name in models:
            convergence_rows(name, args.image_size, device, [int(z) for z in args.splits.split(",")],
                             quick_results=args.quick_results)
        return
    if not args.skip_throughput:
        print("| model | z | unit | feature | img/s bf16 | img/s fp32 | bf16 gain |\n|---|---|---|---|---|---|---|")
        for name in models:
            throughput_rows(name, args.image_size, device, args.steps, args.repeats)
    if not args.skip_wall:
        workdir = Path(tempfile.mkdtemp(prefix="bench_leakage_"))
        try:
            print("| model | image | `leakage --budget quick` wall time | SSIM at z=1 |\n|---|---|---|---|")
            for name in models:
                seconds, ssim = wall_time(name, args.image_size, args.device, workdir)
                print(f"| {name} | {args.image_size} px | {seconds / 60:.1f} min | {ssim} |", flush=True)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"load average at end {os.getloadavg()[0]:.1f} (other processes share the CPU: compare within one run)")


if __name__ == "__main__":
    main()
