"""Train the bundled LeNet-7/9/12 (and ResNet-18) on Fashion-MNIST and write their weights under ``data/weights/``.

    benchmarks/get_fashion_mnist.sh                       # once: the Debian package
    nice -n 10 .venv/bin/python benchmarks/train_lenets.py --threads 1
    nice -n 10 .venv/bin/python benchmarks/train_lenets.py --models resnet18 --image-size 64 \
        --steps 3000 --record data/weights/resnet18.json --threads 1

ResNet-18 is the zoo's (torchvision's, 1000 logits, so its profile table describes it unchanged); it is
trained on labels 0–9 at ``--image-size`` (gray replicated to RGB), the size its leakage table is measured at.

The LeNets keep the bundled tables' input shape, 3×32×32: each 28×28 gray image is resized to 32×32
and replicated to three channels (:func:`inversion.data.victim_input`, the same path ``leakage`` feeds
the victim), so the profile tables' cost fields describe exactly the model whose leakage is measured.
Adam, batch 128, a one-cycle learning rate (warm-up 5 %, cosine to 0), no augmentation, seed 0.
Weights are stored as a float16 ``state_dict`` (``<model>-fashion-mnist.pt``, loaded into float32 by
``--weights``); ``lenets.json`` beside them records test accuracy on the 10,000 t10k images (of the
weights as stored; records made before 2026-12-04 scored the float32 weights before rounding), steps,
seconds and the command.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common.files import atomic_open, write_json  # noqa: E402
from common.precision import autocast, use_bf16  # noqa: E402
from inversion.data import fashion_mnist_arrays, gray_tensor, victim_input  # noqa: E402
from profiler.zoo import load_model  # noqa: E402


def accuracy(model, images: torch.Tensor, labels: torch.Tensor, bf16: bool) -> float:
    """Top-1 over the logits the model has (a 1000-way ResNet predicts among all of them)."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(images), 500):
            with autocast(torch.device("cpu"), bf16):
                logits = model(victim_input(images[start:start + 500], 3))
            correct += int((logits.float().argmax(1) == labels[start:start + 500]).sum())
    return correct / len(images)


def train(name: str, train_x, train_y, test_x, test_y, steps: int, batch: int, lr: float, bf16: bool) -> dict:
    torch.manual_seed(0)
    loaded = load_model(name)
    model = loaded.model.train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: (s + 1) / warm if s < warm else
                                              0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, steps - warm))))
    gen = torch.Generator().manual_seed(0)
    started = time.perf_counter()
    for step in range(steps):
        idx = torch.randint(0, len(train_x), (batch,), generator=gen)
        with autocast(torch.device("cpu"), bf16):
            loss = F.cross_entropy(model(victim_input(train_x[idx], 3)).float(), train_y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if (step + 1) % 100 == 0:
            print(f"{name} step {step + 1}/{steps} loss {float(loss):.3f} "
                  f"({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    seconds = time.perf_counter() - started
    # score the weights as shipped: rounded to float16 (4 of 10,000 LeNet-7 predictions change otherwise)
    model.load_state_dict({k: v.half().float() if v.is_floating_point() else v for k, v in model.state_dict().items()})
    acc = accuracy(model, test_x, test_y, bf16)
    return {"model": model, "test_accuracy": round(acc, 4), "steps": steps, "batch_size": batch, "lr": lr,
            "train_seconds": round(seconds, 1), "epochs": round(steps * batch / len(train_x), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="lenet7,lenet9,lenet12")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "data" / "weights")
    parser.add_argument("--image-size", type=int, default=32, help="input side (LeNets: 32, their native)")
    parser.add_argument("--record", type=Path, default=None, help="training record [OUT/lenets.json]")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    bf16 = use_bf16(torch.device("cpu"), "auto")
    tx, ty = fashion_mnist_arrays("train")
    vx, vy = fashion_mnist_arrays("t10k")
    train_x, test_x = gray_tensor(tx, args.image_size), gray_tensor(vx, args.image_size)
    train_y, test_y = torch.from_numpy(ty.astype("int64")), torch.from_numpy(vy.astype("int64"))
    record_path = args.record or args.out / "lenets.json"
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    for name in [m for m in args.models.split(",") if m]:
        result = train(name, train_x, train_y, test_x, test_y, args.steps, args.batch_size, args.lr, bf16)
        model = result.pop("model")
        file = args.out / f"{name}-fashion-mnist.pt"
        with atomic_open(file, "wb") as fh:
            torch.save({k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}, fh)
        result.update({"weights_file": str(file.relative_to(ROOT) if file.is_relative_to(ROOT) else file), "data": "Fashion-MNIST train split (60,000), "
                       f"28 px gray resized to {args.image_size} px and replicated to 3 channels, ImageNet normalisation",
                       "image_size": args.image_size,
                       "test": "Fashion-MNIST t10k split (10,000 images)", "precision": "bf16" if bf16 else "fp32",
                       "stored_as": "float16 state_dict", "date": dt.datetime.now(dt.timezone.utc).isoformat(
                           timespec="seconds"), "machine": f"{platform.machine()}, {args.threads} torch thread(s)",
                       "command": "python benchmarks/train_lenets.py " + " ".join(sys.argv[1:])})
        record[name] = result
        write_json(record_path, record)
        print(f"{name}: test accuracy {result['test_accuracy']:.4f} after {result['epochs']} epochs "
              f"({result['train_seconds']:.0f} s) -> {file}", flush=True)


if __name__ == "__main__":
    main()
