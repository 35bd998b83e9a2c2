"""Attacker-aware training (ResSFL, Li et al. CVPR'22, in spirit): the device side is fine-tuned against a
simulated inversion attacker trained beside it.

Each fine-tuning step first updates the simulated attacker g' on the detached feature (minimising the
MSE of its reconstruction of the [0, 1] image), then the device and server minimise
task loss + α · SSIM(g'(feature), image): the device learns a feature from which the current attacker
rebuilds the image badly while the classifier still works. SSIM, bounded in [−1, 1], is the quantity the
leakage table reports, and unlike the negated MSE it cannot be driven to −∞ by blowing up the output.
The simulated attacker is not part of the defense's parameters (it is the attacker's, not the device's);
the real attacks measured afterwards train their own decoders from scratch on the defended features.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from inversion.defense.builtin import NoDefense
from inversion.defense.registry import Defense, register_defense
from inversion.metrics import ssim_torch

ATTACKER_WIDTH = 64
ATTACKER_LR = 1e-3
VECTOR_SIDE = 8


class SimulatedAttacker(nn.Module):
    """A small decoder: feature → image in [0, 1] of ``channels × size × size`` (conv, then upsampling)."""

    def __init__(self, feature_shape: tuple[int, ...], channels: int, size: int):
        super().__init__()
        self.size = size
        if len(feature_shape) == 3:
            self.stem: nn.Module = nn.Sequential(nn.Conv2d(feature_shape[0], ATTACKER_WIDTH, 3, padding=1), nn.ReLU())
            side = feature_shape[1]
        else:
            self.stem = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(feature_shape), ATTACKER_WIDTH * VECTOR_SIDE ** 2),
                                      nn.Unflatten(1, (ATTACKER_WIDTH, VECTOR_SIDE, VECTOR_SIDE)), nn.ReLU())
            side = VECTOR_SIDE
        ups = max(0, math.ceil(math.log2(max(1, size / max(1, side)))))
        blocks: list[nn.Module] = []
        for _ in range(ups):
            blocks += [nn.Upsample(scale_factor=2, mode="nearest"),
                       nn.Conv2d(ATTACKER_WIDTH, ATTACKER_WIDTH, 3, padding=1), nn.ReLU()]
        self.body = nn.Sequential(*blocks)
        self.head = nn.Conv2d(ATTACKER_WIDTH, channels, 3, padding=1)

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        x = self.body(self.stem(feature.float()))
        x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return torch.sigmoid(self.head(x))


class AttackerAware(NoDefense):
    """Sends the feature unchanged; what protects is the fine-tuned device side (registered ``trains="both"``)."""

    def __init__(self, strength: float, feature_shape: tuple[int, ...]):
        super().__init__(strength, feature_shape)
        self._simulated: list[tuple[SimulatedAttacker, torch.optim.Optimizer]] = []   # not the device's parameters

    def _attacker(self, images: torch.Tensor) -> tuple[SimulatedAttacker, torch.optim.Optimizer]:
        if not self._simulated:
            attacker = SimulatedAttacker(self.feature_shape, int(images.shape[1]), int(images.shape[-1])).to(images.device)
            self._simulated.append((attacker, torch.optim.Adam(attacker.parameters(), lr=ATTACKER_LR)))
        return self._simulated[0]

    def adversary_step(self, images: torch.Tensor, feature: torch.Tensor) -> None:
        attacker, optimizer = self._attacker(images)
        loss = F.mse_loss(attacker(feature.detach()), images)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def penalty(self, images: torch.Tensor, feature: torch.Tensor) -> torch.Tensor:
        attacker, _ = self._attacker(images)
        for p in attacker.parameters():
            p.requires_grad_(False)
        try:
            return self.strength * ssim_torch(attacker(feature), images)
        finally:
            for p in attacker.parameters():
                p.requires_grad_(True)


@register_defense("adversarial", strength="alpha", strengths=(0.5, 1.0, 2.0, 4.0), trains="both",
                  description="attacker-aware fine-tuning (ResSFL-style): α · SSIM of a simulated decoder")
def _adversarial(strength: float, feature_shape: tuple[int, ...]) -> Defense:
    return AttackerAware(strength, feature_shape)
