"""Train the attacker's decoder g_z on auxiliary features and score it on held-out images (eq. 3).

Threat model: an honest-but-curious server (black-box inverse network). It knows the split point z,
sees the transmitted feature f_z(I_o) and holds auxiliary images from the same distribution as the
victim's, but never the victim's test images. The victim model is frozen; only g_z is trained, to
minimise a pixel loss between g_z(f_z(I)) and I on the auxiliary images.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

from inversion.decoder import Decoder, DecoderShape, FeatureStandardizer
from inversion.features import SplitFeatures, autocast
from inversion.metrics import Leakage, mean_ci95, psnr_per_image, ssim_per_image, ssim_torch

LOSSES = ("mse", "l1", "mse+ssim")


@dataclass(frozen=True)
class TrainConfig:
    """Decoder training settings; ``steps`` minibatches of ``batch_size`` auxiliary images.

    The learning rate warms up for 5 % of the steps and then follows a cosine decay to zero, which
    makes a fixed step budget end in a converged-looking state instead of a noisy one.
    """

    steps: int
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.0
    loss: str = "mse+ssim"
    ssim_weight: float = 0.5
    decoder: DecoderShape = field(default_factory=DecoderShape)

    def as_json(self) -> dict:
        return asdict(self)


@dataclass
class SplitOutcome:
    """What one split's attack produced."""

    split: int
    leakage: Leakage
    reconstructions: torch.Tensor        # N_test × 3 × H × W in [0, 1]
    ssim_per_image: list[float]
    train_seconds: float
    train_images_per_s: float
    final_loss: float


def pixel_loss(recon: torch.Tensor, target: torch.Tensor, config: TrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, batch SSIM) for images in [0, 1]; ``mse+ssim`` = MSE + w·(1 − SSIM)."""
    recon, target = recon.float(), target.float()
    ssim = ssim_torch(recon, target)
    if config.loss == "l1":
        loss = F.l1_loss(recon, target)
    else:
        loss = F.mse_loss(recon, target)
    if config.loss == "mse+ssim":
        loss = loss + config.ssim_weight * (1.0 - ssim)
    return loss, ssim.detach()


def _lr_factor(step: int, steps: int) -> float:
    warm = max(1, steps // 20)
    if step < warm:
        return (step + 1) / warm
    progress = (step - warm) / max(1, steps - warm)
    return 0.5 * (1.0 + torch.cos(torch.tensor(progress * torch.pi)).item())


ProgressFn = Callable[[int, float, float], None]   # (step, loss, running SSIM)


def train_decoder(features: SplitFeatures, train_images: torch.Tensor, image_size: int, config: TrainConfig,
                  device: torch.device, seed: int, bf16: bool = False,
                  progress: ProgressFn | None = None) -> tuple[Decoder, float, float]:
    """Fit g_z on (feature, image) pairs of the auxiliary set; returns (decoder, seconds, last loss)."""
    if config.loss not in LOSSES:
        raise ValueError(f"loss {config.loss!r} not in {LOSSES}")
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    decoder = Decoder(features.shape, image_size, FeatureStandardizer.fit(features.train),
                      config.decoder).to(device)
    optimizer = torch.optim.Adam(decoder.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_factor(s, config.steps))
    targets = train_images.to(device)
    n = len(targets)
    running_ssim, loss_value = 0.0, float("nan")
    started = time.perf_counter()
    decoder.train()
    for step in range(config.steps):
        idx = torch.randint(0, n, (min(config.batch_size, n),), generator=generator).to(device)
        with autocast(device, bf16):
            recon = decoder(features.train[idx].float())
        loss, ssim = pixel_loss(recon, targets[idx], config)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        loss_value = float(loss.detach())
        running_ssim = float(ssim) if step == 0 else 0.9 * running_ssim + 0.1 * float(ssim)
        if progress is not None:
            progress(step, loss_value, running_ssim)
    return decoder, time.perf_counter() - started, loss_value


@torch.no_grad()
def reconstruct(decoder: Decoder, features: torch.Tensor, device: torch.device, bf16: bool = False,
                batch_size: int = 128) -> torch.Tensor:
    decoder.eval()
    outs = []
    for start in range(0, len(features), batch_size):
        with autocast(device, bf16):
            outs.append(decoder(features[start:start + batch_size].to(device).float()).float().cpu())
    return torch.cat(outs)


def attack_split(features: SplitFeatures, train_images: torch.Tensor, test_images: torch.Tensor,
                 config: TrainConfig, device: torch.device, seed: int, bf16: bool = False,
                 progress: ProgressFn | None = None) -> SplitOutcome:
    """Train g_z on the auxiliary split, reconstruct the held-out images, score them with skimage."""
    image_size = int(train_images.shape[-1])
    decoder, seconds, last_loss = train_decoder(features, train_images, image_size, config, device, seed,
                                                bf16, progress)
    recon = reconstruct(decoder, features.test, device, bf16)
    per_image = ssim_per_image(test_images, recon)
    leakage = Leakage(mean_ci95(per_image), mean_ci95(psnr_per_image(test_images, recon)))
    return SplitOutcome(features.split, leakage, recon, [float(v) for v in per_image], seconds,
                        config.steps * config.batch_size / max(seconds, 1e-9), last_loss)
