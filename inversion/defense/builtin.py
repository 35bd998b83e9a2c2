"""The built-in defenses: none, Gaussian noise with norm clipping (with and without re-fitting the server),
k-bit quantisation (with and without a learned 1×1 bottleneck), NoPeek and attacker-aware training.

Each is registered by :func:`inversion.defense.registry.register_defense`; the strength's meaning and the
direction that protects more are part of its registration.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from inversion.defense.registry import FLOAT_BYTES, Defense, register_defense

SCALE_BYTES = 2 * FLOAT_BYTES          # a quantised sample also sends its minimum and its step (float32)
BOTTLENECK_FRACTION = 4                # the bottleneck keeps 1/4 of the channels (at least one)


class NoDefense(Defense):
    """The feature as it is: the reference every defense is priced against."""

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        return feature


@register_defense("none", strength="-", strengths=(0.0,), description="no defense (the reference row)")
def _none(strength: float, feature_shape: tuple[int, ...]) -> Defense:
    return NoDefense(strength, feature_shape)


class ClippedGaussianNoise(Defense):
    """Clip each sample's feature to L2 norm ≤ C, then add N(0, (σ C / √d)² I) (d = its elements).

    σ is the ratio of the noise's expected norm to the clipping norm, so σ = 1 buries a clipped feature
    under noise of its own size. C is the median norm of clean auxiliary features (:meth:`calibrate`).
    """

    def __init__(self, strength: float, feature_shape: tuple[int, ...]):
        super().__init__(strength, feature_shape)
        self.register_buffer("clip_norm", torch.tensor(1.0))

    def calibrate(self, clean_features: torch.Tensor) -> None:
        norms = clean_features.float().flatten(1).norm(dim=1)
        self.clip_norm.fill_(float(norms.median().clamp_min(1e-12)))

    def clip(self, feature: torch.Tensor) -> torch.Tensor:
        norms = feature.flatten(1).norm(dim=1).clamp_min(1e-12)
        factor = (self.clip_norm / norms).clamp(max=1.0)
        return feature * factor.view(-1, *([1] * (feature.dim() - 1)))

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        clipped = self.clip(feature)
        if self.strength == 0:
            return clipped
        d = math.prod(feature.shape[1:])
        noise = torch.randn(feature.shape, device=feature.device, dtype=feature.dtype)   # torch's seeded stream
        return clipped + noise * (self.strength * self.clip_norm / math.sqrt(d))

    def attacker_view(self, feature: torch.Tensor) -> torch.Tensor:
        return self.clip(feature)            # the noise's mean: the maximum-likelihood target of a Gaussian


@register_defense("noise", strength="sigma", strengths=(0.25, 0.5, 1.0, 2.0, 4.0),
                  description="norm clipping + Gaussian noise (σ = noise norm / clipping norm), server as trained")
def _noise(strength: float, feature_shape: tuple[int, ...]) -> Defense:
    return ClippedGaussianNoise(strength, feature_shape)


@register_defense("noise-ft", strength="sigma", strengths=(0.25, 0.5, 1.0, 2.0, 4.0), trains="server",
                  description="norm clipping + Gaussian noise, the server side fine-tuned on noisy features")
def _noise_ft(strength: float, feature_shape: tuple[int, ...]) -> Defense:
    return ClippedGaussianNoise(strength, feature_shape)


def quantize_ste(feature: torch.Tensor, bits: int) -> torch.Tensor:
    """Per-sample min–max uniform quantisation to 2^bits levels, dequantised; straight-through gradient.

    With one bit a sample's elements become its minimum or maximum (thresholded at the midpoint).
    """
    flat = feature.flatten(1)
    low = flat.min(dim=1, keepdim=True).values
    span = (flat.max(dim=1, keepdim=True).values - low).clamp_min(1e-12)
    levels = 2 ** bits - 1
    q = torch.round((flat - low) / span * levels)
    dequantised = (low + q / levels * span).view_as(feature)
    return dequantised.detach() + (feature - feature.detach())      # exactly the levels; gradient 1


class Quantize(Defense):
    """k-bit quantisation of the sent feature: ⌈d·k / 8⌉ bytes plus the sample's minimum and step."""

    def __init__(self, strength: float, feature_shape: tuple[int, ...]):
        super().__init__(strength, feature_shape)
        if strength != int(strength) or not 1 <= strength <= 16:
            raise ValueError(f"quantize: bits must be an integer 1..16, got {strength:g}")
        self.bits = int(strength)

    def sent_bytes(self) -> int:
        return math.ceil(math.prod(self.sent_shape()) * self.bits / 8) + SCALE_BYTES

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        return quantize_ste(self.encode(feature), self.bits)

    def encode(self, feature: torch.Tensor) -> torch.Tensor:
        return feature


@register_defense("quantize", strength="bits", strengths=(8, 4, 2, 1), stronger="lower",
                  description="k-bit per-sample min–max quantisation of the feature, server as trained")
def _quantize(strength: float, feature_shape: tuple[int, ...]) -> Defense:
    return Quantize(strength, feature_shape)


class BottleneckQuantize(Quantize):
    """A learned 1×1 convolution to C/4 channels (a linear map to d/4 for a vector), then k-bit
    quantisation; the server expands back with a learned 1×1 convolution. Trains both sides."""

    def __init__(self, strength: float, feature_shape: tuple[int, ...]):
        super().__init__(strength, feature_shape)
        self.spatial = len(feature_shape) == 3
        channels = feature_shape[0]
        self.kept = max(1, channels // BOTTLENECK_FRACTION)
        make = (lambda a, b: nn.Conv2d(a, b, 1)) if self.spatial else nn.Linear
        if len(feature_shape) not in (1, 3):
            raise ValueError(f"bottleneck: feature shape {feature_shape} is neither C×H×W nor a vector")
        self.squeeze, self.expand = make(channels, self.kept), make(self.kept, channels)

    def _positions(self) -> int:
        return math.prod(self.feature_shape[1:]) if self.spatial else 1

    def sent_shape(self) -> tuple[int, ...]:
        return (self.kept, *self.feature_shape[1:])

    def device_macs(self) -> int:
        return self.feature_shape[0] * self.kept * self._positions()

    def server_macs(self) -> int:
        return self.device_macs()

    def encode(self, feature: torch.Tensor) -> torch.Tensor:
        return self.squeeze(feature)

    def server_adapter(self) -> nn.Module:
        return self.expand


@register_defense("bottleneck", strength="bits", strengths=(8, 4, 2, 1), trains="both", stronger="lower",
                  description="learned 1×1 bottleneck to C/4 channels, then k-bit quantisation (cuts bytes too)")
def _bottleneck(strength: float, feature_shape: tuple[int, ...]) -> Defense:
    return BottleneckQuantize(strength, feature_shape)


def distance_correlation(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Squared sample distance correlation dCor²(X, Y) of two batches (Székely et al. 2007), in [0, 1].

    A = double-centred pairwise distances of X (B of Y); dCov² = mean(A ∘ B); dCor² = dCov²(X, Y) /
    √(dCov²(X, X) dCov²(Y, Y)). 1 when Y is an affine map of X (with a scalar factor), ≈ 0 when independent.
    """
    def centred(t: torch.Tensor) -> torch.Tensor:
        flat = t.flatten(1).float()
        d = torch.cdist(flat, flat, compute_mode="donot_use_mm_for_euclid_dist")   # exact, not |a|²+|b|²−2ab
        return d - d.mean(0, keepdim=True) - d.mean(1, keepdim=True) + d.mean()

    a, b = centred(x), centred(y)
    dcov_xy, dcov_xx, dcov_yy = (a * b).mean(), (a * a).mean(), (b * b).mean()
    return dcov_xy / (dcov_xx * dcov_yy).sqrt().clamp_min(1e-12)


class NoPeek(NoDefense):
    """NoPeek (Vepakomma et al. 2020): fine-tune with task loss + α · dCor²(input, feature)."""

    def penalty(self, images: torch.Tensor, feature: torch.Tensor) -> torch.Tensor:
        return self.strength * distance_correlation(images, feature)


@register_defense("nopeek", strength="alpha", strengths=(0.5, 1.0, 2.0, 4.0), trains="both",
                  description="NoPeek: fine-tuned with α · distance correlation(input, feature)")
def _nopeek(strength: float, feature_shape: tuple[int, ...]) -> Defense:
    return NoPeek(strength, feature_shape)
