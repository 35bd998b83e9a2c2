"""The attacker's inverse network g_z: transmitted feature at split z → reconstructed image I_r (eq. 3).

Shaped by the feature it inverts (after Dosovitskiy & Brox, the paper's [29]):

* conv features ``C × h × w`` → 1×1 projection, a 3×3 conv, then ``k = round(log2(H / h))`` stages of
  (×2 nearest upsampling, 3×3 conv, halving the width), a final resize to ``H × W`` when ``H / h`` is
  not a power of two, and a 3×3 conv to the image's channels with a sigmoid (images in [0, 1]);
* vector features (any other rank, or ``C × 1 × 1``) → a learned linear map to a spatial *seed* of
  ``width × s × s`` with ``s = H / 8`` (at least 4), then the same 3×3 conv and upsampling stages as a
  spatial feature of that side. A seed at 1/8 of the image keeps enough positions for the linear map
  to lay the information out spatially (a 4×4 seed starved it: a flattened 8×8 image measured 0.09
  SSIM below its spatial form, NOTES.md). A vector longer than ``vector_rank`` whose full map would
  exceed ``FULL_LINEAR_LIMIT`` weights enters through a rank-``vector_rank`` factorised map.

Flattened conv features are not vectors here: :mod:`inversion.features` hands them over in their
pre-flatten shape (the server runs the rest of the model, so it knows that shape).

The feature is first standardised per channel with statistics of the auxiliary set (a fixed affine
layer of the attacker, stored as buffers), which keeps optimisation well conditioned whatever the
scale of a random-init encoder's activations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

VECTOR_SEED_FRACTION = 8     # vector seed side = image side / 8
VECTOR_MIN_SIDE = 4
FULL_LINEAR_LIMIT = 8_000_000   # weights of a full vector → seed map before it is factorised


@dataclass(frozen=True)
class DecoderShape:
    """Widths of the decoder: ``base_width`` at full resolution, doubling per ×2 stage up to ``max_width``."""

    base_width: int = 16
    max_width: int = 128
    vector_rank: int = 512     # long vectors enter through a rank-r linear map (in → r → width·s²)


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2))


class FeatureStandardizer(nn.Module):
    """Fixed ``(f - mean) / std`` per channel (per element for vectors), fitted on auxiliary features."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    @classmethod
    def fit(cls, features: torch.Tensor, chunk: int = 256) -> "FeatureStandardizer":
        """Mean and std over the auxiliary set, accumulated in float64 chunks (no full float copy)."""
        dims = (0, 2, 3) if features.dim() == 4 else (0,)
        total = torch.zeros((), dtype=torch.float64)
        sums = sq_sums = None
        for start in range(0, len(features), chunk):
            f = features[start:start + chunk].double()
            s, q = f.sum(dim=dims, keepdim=True), (f * f).sum(dim=dims, keepdim=True)
            sums, sq_sums = (s, q) if sums is None else (sums + s, sq_sums + q)
            total += f.numel() / s.numel()
        mean = sums / total
        var = (sq_sums / total - mean * mean).clamp_min(0.0) * total / max(total.item() - 1.0, 1.0)
        return cls(mean[0].float(), var[0].sqrt().float().clamp_min(1e-6))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return (f - self.mean) / self.std


def _is_spatial(shape: tuple[int, ...]) -> bool:
    return len(shape) == 3 and shape[1] * shape[2] > 1


class Decoder(nn.Module):
    """g_z: feature of shape ``feature_shape`` (batch excluded) → image ``channels × H × W`` in [0, 1]."""

    def __init__(self, feature_shape: tuple[int, ...], image_size: int, standardizer: FeatureStandardizer,
                 shape: DecoderShape = DecoderShape(), channels: int = 3):
        super().__init__()
        self.feature_shape = tuple(feature_shape)
        self.image_size = image_size
        self.standardizer = standardizer
        if _is_spatial(self.feature_shape):
            in_channels, side = self.feature_shape[0], min(self.feature_shape[1:])
            stages = max(0, round(math.log2(image_size / side))) if side < image_size else 0
            width = min(shape.max_width, shape.base_width * 2 ** stages)
            self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 1), nn.LeakyReLU(0.2), _block(width, width))
            self.seed = None
        else:
            in_dim = math.prod(self.feature_shape)
            side = min(image_size, max(VECTOR_MIN_SIDE, image_size // VECTOR_SEED_FRACTION))
            stages = max(0, round(math.log2(image_size / side)))
            width = min(shape.max_width, shape.base_width * 2 ** stages)
            out_dim = width * side * side
            if in_dim > shape.vector_rank and in_dim * out_dim > FULL_LINEAR_LIMIT:   # e.g. VGG's fc6 4096
                linear = nn.Sequential(nn.Linear(in_dim, shape.vector_rank, bias=False),
                                       nn.Linear(shape.vector_rank, out_dim))
            else:
                linear = nn.Linear(in_dim, out_dim)
            self.seed = nn.Sequential(nn.Flatten(), linear, nn.Unflatten(1, (width, side, side)),
                                      nn.LeakyReLU(0.2))
            self.stem = _block(width, width)
        self.width = width
        ups = []
        for _ in range(stages):
            out = max(shape.base_width, width // 2)
            ups += [nn.Upsample(scale_factor=2, mode="nearest"), _block(width, out)]
            width = out
        self.upsample = nn.Sequential(*ups)
        self.to_image = nn.Conv2d(width, channels, 3, padding=1)

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        x = self.standardizer(feature)
        if self.seed is not None:
            x = self.seed(x)
        x = self.upsample(self.stem(x))
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            x = nn.functional.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear",
                                          align_corners=False)
        return torch.sigmoid(self.to_image(x))
