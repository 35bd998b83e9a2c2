"""Train the attacker's decoder g_z on auxiliary features and score it on held-out images (eq. 3).

Threat model: an honest-but-curious server (black-box inverse network). It knows the split point z,
sees the transmitted feature f_z(I_o) and holds auxiliary images from the same distribution as the
victim's, but never the victim's test images. The victim model is frozen; only g_z is trained, to
minimise a pixel loss between g_z(f_z(I)) and I on the auxiliary images.
"""

from __future__ import annotations

import copy
import math
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
    ``val_images`` auxiliary images (at most 1/8 of them, chosen by the seed) are held out of
    training and scored ``checkpoints`` times, evenly over training: the convergence report.
    """

    steps: int
    batch_size: int = 32
    lr: float = 5e-3
    weight_decay: float = 0.0
    loss: str = "mse+ssim"
    ssim_weight: float = 0.5
    decoder: DecoderShape = field(default_factory=DecoderShape)
    val_images: int = 256
    checkpoints: int = 8

    def as_json(self) -> dict:
        return asdict(self)


@dataclass
class SplitOutcome:
    """What one split's attack produced."""

    split: int
    leakage: Leakage
    reconstructions: torch.Tensor        # N_test × C × H × W in [0, 1]
    ssim_per_image: list[float]
    train_seconds: float
    train_images_per_s: float
    final_loss: float
    convergence: "Convergence"
    fit_pairs: int = 0                   # auxiliary pairs the decoder was fitted on (n_train − held-out)
    vector: bool = False                 # the decoder received a vector (not a C × h × w feature)
    feature_width: int = 0               # numbers per feature

    @property
    def data_limited(self) -> bool:
        """A vector wider than the fitting pairs: not even its linear inverse is identifiable from them,
        so the measured SSIM is a lower bound that a larger auxiliary set can raise."""
        return self.vector and self.feature_width > self.fit_pairs


@dataclass(frozen=True)
class Convergence:
    """Held-out auxiliary SSIM along training; ``gain_last_half`` = SSIM(end) − SSIM(half-way).

    A decoder still gaining over the second half of its (cosine-annealed) training has not converged;
    BENCHMARKS.md relates this number to the gain of a 4× longer run.
    """

    steps: list[int]
    val_ssim: list[float]
    n_val: int

    @property
    def gain_last_half(self) -> float:
        half = min(range(len(self.steps)), key=lambda i: abs(self.steps[i] - self.steps[-1] / 2))
        return self.val_ssim[-1] - self.val_ssim[half]

    def as_json(self) -> dict:
        return {"steps": self.steps, "val_ssim": [round(v, 4) for v in self.val_ssim], "n_val": self.n_val,
                "gain_last_half": round(self.gain_last_half, 4),
                "definition": "SSIM of held-out auxiliary images (never the victim's test images) at "
                              "evenly spaced training steps; gain_last_half = end minus half-way"}


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


def _checkpoint_steps(steps: int, count: int) -> list[int]:
    """Steps after which the held-out auxiliary images are scored (the last one is ``steps``)."""
    return sorted({max(1, round(steps * k / count)) for k in range(1, count + 1)})


@torch.no_grad()
def _val_ssim(decoder: Decoder, features: torch.Tensor, targets: torch.Tensor, device: torch.device,
              bf16: bool) -> float:
    recon = reconstruct(decoder, features, device, bf16)
    decoder.train()
    return float(ssim_torch(recon, targets.cpu()))


def fit_pairs(n_train: int, config: TrainConfig) -> int:
    """Auxiliary pairs the decoder is fitted on: ``n_train`` less the held-out validation images."""
    return n_train - min(config.val_images, n_train // 8)


def train_decoder(features: SplitFeatures, train_images: torch.Tensor, image_size: int, config: TrainConfig,
                  device: torch.device, seed: int, bf16: bool = False,
                  progress: ProgressFn | None = None) -> tuple[Decoder, float, float, Convergence]:
    """Fit g_z on (feature, image) pairs of the auxiliary set; returns (decoder, seconds, last loss, curve).

    A vector whose linear start keeps a side finer than the learned seed's trains a second decoder beside
    the first, on the same batches, from the start smoothed to the seed's side (the start the decoder had
    before 2026-12-02), and keeps the one whose held-out auxiliary SSIM is higher at the end (the first on
    a tie or with no held-out images). The finer start is the better *start* (its own out-of-fold SSIM,
    :meth:`LinearImageSeed._smoothing_side`), but not always the better place to train from: on
    Fashion-MNIST's LeNet vectors a decoder trained from the 32×32 start ended 0.02 SSIM below one trained
    from the 8×8 start (lenet7 z=5 0.720 against 0.742), while wide vectors of photographs gain from it.
    """
    if config.loss not in LOSSES:
        raise ValueError(f"loss {config.loss!r} not in {LOSSES}")
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    n_all = len(train_images)
    n_val = n_all - fit_pairs(n_all, config)
    order = torch.randperm(n_all, generator=generator)
    val_idx, fit_idx = order[:n_val], order[n_val:]
    fit_features = features.train[fit_idx]
    decoder = Decoder(features.shape, image_size, FeatureStandardizer.fit(fit_features),
                      config.decoder, channels=int(train_images.shape[1]), fit_pairs=len(fit_idx))
    standardised = decoder.standardizer(fit_features.float())
    candidates: list[tuple[Decoder, torch.Tensor | None]] = []
    if decoder.linear_image.vector:       # full width, λ per output by CV; out-of-fold starts to train on
        raw = decoder.linear_image.fit_vector(standardised, train_images[fit_idx], config.decoder.base_folds,
                                              seed, out_of_fold=config.decoder.base_folds > 1, smoothed=False)
        coarse = decoder.linear_image.coarse_side() if n_val else None   # no held-out images: nothing to choose by
        if coarse is not None:
            other = copy.deepcopy(decoder)                  # same initial weights
            other.linear_image.smooth_side = coarse
        for d in [decoder] + ([other] if coarse is not None else []):
            bases = None if raw is None else d.linear_image.smoothed_to(raw, d.linear_image.smooth_side)
            candidates.append((d, None if bases is None else bases.to(device)))
        del raw
    else:
        decoder.linear_image.fit(standardised, train_images[fit_idx])
        candidates.append((decoder, None))
    del standardised
    runs = [_Run(d.to(device), bases, config) for d, bases in candidates]
    targets = train_images[fit_idx].to(device)
    val_features, val_targets = features.train[val_idx], train_images[val_idx]
    checkpoints = set(_checkpoint_steps(config.steps, config.checkpoints)) if n_val else set()
    curve_steps: list[int] = []
    n = len(targets)
    started = time.perf_counter()
    for step in range(config.steps):
        idx = torch.randint(0, n, (min(config.batch_size, n),), generator=generator).to(device)
        for run in runs:
            run.step(fit_features, idx, targets, device, bf16, first=step == 0)
        if step + 1 in checkpoints:
            curve_steps.append(step + 1)
            for run in runs:
                run.curve.append(_val_ssim(run.decoder, val_features, val_targets, device, bf16))
        if progress is not None:
            progress(step, runs[0].loss, runs[0].running_ssim)
    best = max(runs, key=_final_score)                                  # max keeps the first on a tie
    return best.decoder, time.perf_counter() - started, best.loss, Convergence(curve_steps, best.curve, n_val)


def _final_score(run: "_Run") -> float:
    """The held-out auxiliary SSIM a candidate ends at; a diverged (NaN) or unscored one never wins."""
    score = run.curve[-1] if run.curve else -1.0
    return score if math.isfinite(score) else -math.inf


class _Run:
    """One candidate decoder of :func:`train_decoder`: its optimizer, schedule and held-out curve."""

    def __init__(self, decoder: Decoder, bases: torch.Tensor | None, config: TrainConfig):
        self.decoder, self.bases, self.config = decoder, bases, config
        self.optimizer = torch.optim.Adam(decoder.parameter_groups(config.lr), lr=config.lr,
                                          weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: _lr_factor(s, config.steps))
        self.curve: list[float] = []
        self.loss, self.running_ssim = float("nan"), 0.0
        decoder.train()

    def step(self, features: torch.Tensor, idx: torch.Tensor, targets: torch.Tensor, device: torch.device,
             bf16: bool, first: bool) -> None:
        with autocast(device, bf16):
            recon = self.decoder(features[idx].float(), None if self.bases is None else self.bases[idx])
        loss, ssim = pixel_loss(recon, targets[idx], self.config)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        self.loss = float(loss.detach())
        self.running_ssim = float(ssim) if first else 0.9 * self.running_ssim + 0.1 * float(ssim)


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
    decoder, seconds, last_loss, convergence = train_decoder(features, train_images, image_size, config, device,
                                                             seed, bf16, progress)
    recon = reconstruct(decoder, features.test, device, bf16)
    per_image = ssim_per_image(test_images, recon)
    leakage = Leakage(mean_ci95(per_image), mean_ci95(psnr_per_image(test_images, recon)))
    return SplitOutcome(features.split, leakage, recon, [float(v) for v in per_image], seconds,
                        config.steps * config.batch_size / max(seconds, 1e-9), last_loss, convergence,
                        fit_pairs=fit_pairs(len(train_images), config), vector=decoder.linear_image.vector,
                        feature_width=int(features.train[0].numel()))
