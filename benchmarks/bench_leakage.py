"""Benchmark of the leakage attack: decoder-training throughput per split point, and the wall time of
``cli.py leakage --budget quick`` (resnet18 and vgg16 at 64×64 by default).

    .venv/bin/python benchmarks/bench_leakage.py                       # throughput + wall time, CPU
    .venv/bin/python benchmarks/bench_leakage.py --skip-wall --steps 10
    .venv/bin/python benchmarks/bench_leakage.py --device cuda         # on a lent GPU

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
from inversion.attack import TrainConfig, pixel_loss  # noqa: E402
from inversion.data import Normalizer, embedded  # noqa: E402
from inversion.decoder import Decoder, FeatureStandardizer  # noqa: E402
from inversion.features import autocast, iter_split_features  # noqa: E402
from profiler.graph import split_model  # noqa: E402
from profiler.zoo import load_model  # noqa: E402


def decoder_throughput(features, targets, image_size: int, device: torch.device, bf16: bool, steps: int,
                       repeats: int, batch: int = 32) -> float:
    """Median images/s of decoder training steps on cached features."""
    config = TrainConfig(steps=steps, batch_size=batch)
    decoder = Decoder(tuple(features.shape[1:]), image_size, FeatureStandardizer.fit(features),
                      config.decoder).to(device)
    optimizer = torch.optim.Adam(decoder.parameters(), lr=config.lr)
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
    args = parser.parse_args()
    device = resolve_device(args.device)
    models = [m for m in args.models.split(",") if m]
    load = os.getloadavg()[0]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}, "
          f"device {device}, load average {load:.1f} at start, {dt.datetime.now():%Y-%m-%d %H:%M}")
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
