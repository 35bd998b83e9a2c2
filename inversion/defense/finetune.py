"""A split model with a defense at the cut, its fine-tuning, and its test accuracy.

``DefendedSplit`` = device units 1..z → defense → (server adapter → units z+1..L). Copies are made, so the
victim's own weights never change. Fine-tuning follows the defense's ``trains``: ``"server"`` re-fits
adapter and server units to the defended feature; ``"both"`` also trains the device units and the
defense's own parameters, with the defense's penalty added to the cross-entropy (NoPeek's distance
correlation, the attacker-aware SSIM term).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from common.precision import autocast
from inversion.data import victim_input
from inversion.defense.registry import Defense

ACCURACY_BATCH = 500
CALIBRATION_IMAGES = 512


@dataclass(frozen=True)
class FinetuneConfig:
    """Adam at ``lr`` for ``steps`` minibatches of ``batch_size`` from the owner's training images, less
    ``val_images`` held out (seeded) to judge a server-only fine-tune against none."""

    steps: int = 150
    batch_size: int = 64
    lr: float = 5e-4
    val_images: int = 1000


@dataclass
class FinetuneResult:
    """Losses per step and, for a server-only fine-tune, held-out accuracy before and after and whether
    the fine-tuned server was kept (it is only when it is not worse: re-fitting must never cost accuracy)."""

    losses: list[float]
    val_before: float | None = None
    val_after: float | None = None
    kept: bool = True

    def as_json(self) -> dict:
        return {"steps": len(self.losses), "final_loss": round(self.losses[-1], 5) if self.losses else None,
                "val_accuracy_before": self.val_before, "val_accuracy_after": self.val_after, "kept": self.kept}


class DefendedSplit(nn.Module):
    """Device side, defense and server side of split z, as copies of the victim's units."""

    def __init__(self, device_side: nn.Module, defense: Defense, server_side: nn.Module, channels: int):
        super().__init__()
        self.device_side = copy.deepcopy(device_side)
        self.defense = defense
        self.adapter = defense.server_adapter()
        self.server_side = copy.deepcopy(server_side)
        self.channels = channels

    def clean_feature(self, images: torch.Tensor) -> torch.Tensor:
        """What the undefended device side would send, for [0, 1] images."""
        return self.device_side(victim_input(images, self.channels))

    def send(self, images: torch.Tensor) -> torch.Tensor:
        """The tensor that crosses the cut (defended), for [0, 1] images."""
        return self.defense(self.clean_feature(images))

    def receive(self, sent: torch.Tensor) -> torch.Tensor:
        return self.server_side(self.adapter(sent))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.receive(self.send(images))

    def trained_parameters(self) -> list[nn.Parameter]:
        """What fine-tuning updates, by the defense's ``trains``."""
        if self.defense.trains == "none":
            return []
        params = list(self.adapter.parameters()) + list(self.server_side.parameters())
        if self.defense.trains == "both":
            params = list(self.device_side.parameters()) + list(self.defense.parameters()) + params
        seen: set[int] = set()
        return [p for p in params if not (id(p) in seen or seen.add(id(p)))]


@torch.no_grad()
def calibrate(model: DefendedSplit, images: torch.Tensor, device: torch.device, bf16: bool) -> None:
    """Let the defense fit its constants (a clipping norm) on clean features of the owner's images."""
    with autocast(device, bf16):
        clean = model.clean_feature(images[:CALIBRATION_IMAGES].to(device)).float()
    model.defense.calibrate(clean)


def _val_accuracy(model: DefendedSplit, images: torch.Tensor, labels: torch.Tensor, device: torch.device,
                  bf16: bool, seed: int) -> float:
    torch.manual_seed(seed)                                # the same noise draws before and after
    return accuracy(model, images, labels, device, bf16).value


def finetune(model: DefendedSplit, images: torch.Tensor, labels: torch.Tensor, config: FinetuneConfig,
             device: torch.device, bf16: bool, seed: int,
             progress: Callable[[int, float], None] = lambda step, loss: None) -> FinetuneResult:
    """Fine-tune what the defense trains (nothing for ``trains == "none"``).

    Device units that are not trained stay in eval mode (their batch-norm statistics never move). A
    server-only fine-tune is kept only if its held-out accuracy is not below the untouched server's."""
    params = model.trained_parameters()
    if not params or config.steps == 0:
        return FinetuneResult([])
    for p in model.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.Adam(params, lr=config.lr)
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(images), generator=generator)
    n_val = min(config.val_images, len(images) // 4)
    val, fit = order[:n_val], order[n_val:]
    server_only = model.defense.trains == "server" and n_val > 0
    if server_only:
        before = _val_accuracy(model, images[val], labels[val], device, bf16, seed)
        initial = [copy.deepcopy(m.state_dict()) for m in (model.adapter, model.server_side)]
    torch.manual_seed(seed)                                # the defense's noise and the simulated attacker
    model.train()
    if model.defense.trains != "both":
        model.device_side.eval()
    losses = []
    for step in range(config.steps):
        idx = fit[torch.randint(0, len(fit), (config.batch_size,), generator=generator)]
        x, y = images[idx].to(device), labels[idx].to(device)
        with autocast(device, bf16):
            clean = model.clean_feature(x)
            if model.defense.trains == "both":
                model.defense.adversary_step(x, clean.float())
            logits = model.receive(model.defense(clean))
            loss = F.cross_entropy(logits.float(), y) + model.defense.penalty(x, clean.float())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        progress(step, losses[-1])
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    if not server_only:
        return FinetuneResult(losses)
    after = _val_accuracy(model, images[val], labels[val], device, bf16, seed)
    if after < before:
        for module, state in zip((model.adapter, model.server_side), initial):
            module.load_state_dict(state)
    return FinetuneResult(losses, round(before, 5), round(after, 5), kept=after >= before)


@dataclass(frozen=True)
class Accuracy:
    """Top-1 test accuracy with a normal-approximation 95 % CI over the n test images."""

    value: float
    ci95: tuple[float, float]
    n: int

    def as_json(self) -> dict:
        return {"mean": self.value, "ci95": list(self.ci95), "n": self.n}


@torch.no_grad()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, device: torch.device, bf16: bool) -> Accuracy:
    """Top-1 accuracy of ``model`` ([0, 1] images → logits) on every test image."""
    model.eval()
    correct = 0
    for start in range(0, len(images), ACCURACY_BATCH):
        with autocast(device, bf16):
            logits = model(images[start:start + ACCURACY_BATCH].to(device))
        correct += int((logits.float().argmax(1).cpu() == labels[start:start + ACCURACY_BATCH]).sum())
    n = len(images)
    p = correct / n
    half = 1.96 * math.sqrt(p * (1 - p) / n)
    return Accuracy(p, (max(0.0, p - half), min(1.0, p + half)), n)
