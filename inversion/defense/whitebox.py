"""White-box inversion by optimisation: rMLE (He, Zhang & Lee, ACSAC 2019), knowing the defense.

The attacker holds the device-side weights (as fine-tuned) and the defense (its constants, without its
randomness: :meth:`Defense.attacker_view`) and, for each received tensor s, solves

    x̂ = argmin_x  ‖view(f_d(x)) − s‖² / ‖s‖²  +  λ_TV · TV(x),      x = sigmoid(u) ∈ [0, 1]

by Adam from the mean auxiliary image. λ_TV is the attacker's to choose: it is picked from
``WhiteboxConfig.tv_grid`` on auxiliary images it defended itself (never on the victims), by their SSIM.
For Gaussian noise the squared error is the noise's log-likelihood, so this is its maximum-likelihood
estimate under a TV prior; for quantisation the gradient passes straight through the rounding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from common.precision import autocast
from inversion.defense.finetune import DefendedSplit
from inversion.metrics import ssim_torch

@dataclass(frozen=True)
class WhiteboxConfig:
    """Adam steps and rate, victims attacked (a subset of the held-out images: each costs ``steps`` passes),
    and the λ_TV grid the attacker chooses from on ``choose_images`` of its own auxiliary images."""

    steps: int = 200
    images: int = 64
    batch_size: int = 64
    lr: float = 0.05
    tv_grid: tuple[float, ...] = (0.0, 1e-3, 1e-2, 1e-1)
    choose_images: int = 16


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean anisotropic total variation per image (mean |Δ| along height and width)."""
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()


def _logit(p: torch.Tensor) -> torch.Tensor:
    p = p.clamp(1e-3, 1 - 1e-3)
    return torch.log(p / (1 - p))


def invert(model: DefendedSplit, received: torch.Tensor, start: torch.Tensor, steps: int, tv_weight: float,
           device: torch.device, bf16: bool, lr: float = 0.05) -> torch.Tensor:
    """x̂ ∈ [0, 1] for one batch of received tensors, from the ``start`` image (1 × C × S × S)."""
    target = received.to(device).float()
    scale = target.flatten(1).pow(2).sum(1).clamp_min(1e-12)
    u = _logit(start.to(device).float()).expand(len(target), -1, -1, -1).clone().requires_grad_(True)
    optimizer = torch.optim.Adam([u], lr=lr)
    for _ in range(steps):
        x = torch.sigmoid(u)
        with autocast(device, bf16):
            view = model.defense.attacker_view(model.clean_feature(x))
        fit = (view.float() - target).flatten(1).pow(2).sum(1) / scale
        loss = fit.sum() + tv_weight * len(target) * total_variation(x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return torch.sigmoid(u.detach()).cpu()


def _invert_all(model: DefendedSplit, received: torch.Tensor, start: torch.Tensor, config: WhiteboxConfig,
                tv_weight: float, device: torch.device, bf16: bool, tick: Callable[[int], None]) -> torch.Tensor:
    outs = []
    for begin in range(0, len(received), config.batch_size):
        outs.append(invert(model, received[begin:begin + config.batch_size], start, config.steps, tv_weight,
                           device, bf16, config.lr))
        tick(len(outs[-1]))
    return torch.cat(outs)


def choose_tv(model: DefendedSplit, aux_received: torch.Tensor, aux_images: torch.Tensor, start: torch.Tensor,
              config: WhiteboxConfig, device: torch.device, bf16: bool) -> float:
    """The λ_TV of the grid under which the attacker rebuilds its own auxiliary images best (SSIM)."""
    n = min(config.choose_images, len(aux_received))
    scores = []
    for weight in config.tv_grid:
        recon = invert(model, aux_received[:n], start, config.steps, weight, device, bf16, config.lr)
        scores.append(float(ssim_torch(recon, aux_images[:n].float())))
    return config.tv_grid[max(range(len(config.tv_grid)), key=lambda i: scores[i])]


def rmle_attack(model: DefendedSplit, received: torch.Tensor, aux_received: torch.Tensor, aux_images: torch.Tensor,
                config: WhiteboxConfig, device: torch.device, bf16: bool,
                tick: Callable[[int], None] = lambda n: None) -> tuple[torch.Tensor, float]:
    """Reconstructions of the received tensors' images and the λ_TV chosen; ``model`` stays frozen."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    start = aux_images.float().mean(dim=0, keepdim=True)
    weight = choose_tv(model, aux_received, aux_images, start, config, device, bf16)
    return _invert_all(model, received, start, config, weight, device, bf16, tick), weight
