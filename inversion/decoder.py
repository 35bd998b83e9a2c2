"""The attacker's inverse network g_z: transmitted feature at split z → reconstructed image I_r (eq. 3).

Shaped by the feature it inverts (after Dosovitskiy & Brox, the paper's [29]):

* conv features ``C × h × w`` → 1×1 projection, a 3×3 conv, then ``k = round(log2(H / h))`` stages of
  (×2 nearest upsampling, 3×3 conv, halving the width), a final resize to ``H × W`` when ``H / h`` is
  not a power of two, and a 3×3 conv to the image's channels with a sigmoid (images in [0, 1]);
* vector features (any other rank, or ``C × 1 × 1``) → a learned linear map to a spatial *seed* of
  ``c × s × s`` with ``s = max(8, H / 8)`` and ``c·s² ≤ 8192``, then the same 3×3 conv and upsampling
  stages as a spatial feature of that side. A seed at 1/8 of the image keeps enough positions for the linear map
  to lay the information out spatially (a 4×4 seed starved it: a flattened 8×8 image measured 0.09
  SSIM below its spatial form with the earlier decoder). The full-width linear reconstruction of the image
  (:class:`LinearImageSeed`, closed form, at the image's own resolution while its weights stay under
  ``BASE_WEIGHT_LIMIT``) is the output's starting point and is handed to every upsampling stage at that
  stage's resolution, so all of a vector's linearly decodable information reaches the decoder at any
  width (before 2026-12-02 the start sat at the seed's 1/8 side and a vector wider than 512 entered the
  learned map through rank 512: a 1024-vector orthogonal mix of a 32×32 image measured 0.80 against
  0.95 for the image itself). The learned map is full rank unless the vector is wider than the pairs it
  is fitted on (data-limited: VGG's 4096-wide fc6 on 1,792 pairs, where a full map cost 2.3× the
  decoder's step time) or the map would exceed ``FULL_LINEAR_LIMIT`` weights; then it is factorised at
  rank ``vector_rank``.

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

from inversion import ridge
from inversion.metrics import ssim_torch

VECTOR_SEED_FRACTION = 8     # vector seed side = image side / 8, at least 8
VECTOR_MIN_SIDE = 8
SEED_LR_FACTOR = 0.1
BASE_CLAMP = 1e-3            # the linear reconstruction is clamped to [ε, 1 − ε] before its logit
VECTOR_SEED_ELEMENTS = 8192  # channels × side² of the seed (fewer channels on a large seed)
FULL_LINEAR_LIMIT = 40_000_000  # weights of a full vector → seed map before it is factorised (4096 × 8192 fit)
BASE_WEIGHT_LIMIT = 64_000_000  # weights of a vector's linear start (4096 × 3 × 64², 256 MB in float32)


@dataclass(frozen=True)
class DecoderShape:
    """Widths of the decoder: ``base_width`` at full resolution, doubling per ×2 stage up to ``max_width``."""

    base_width: int = 16
    max_width: int = 128
    vector_rank: int = 512     # vectors wider than FULL_LINEAR_LIMIT allows enter the learned map at rank r
    base_folds: int = 5        # vectors: train on out-of-fold linear starts (0 or 1: in-sample, as before 2026-11-30 pm)


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


class LinearImageSeed(nn.Module):
    """The best linear reconstruction of the image from the feature, at the feature's (or image's) side.

    Vector features: ``W f + b`` reshaped to ``channels × s × s`` (full width: every input number has
    its weight; ``s`` is the image side unless ``BASE_WEIGHT_LIMIT`` caps it), fitted by ridge with λ
    per output chosen by cross-validation (:meth:`fit_vector`); spatial features: a 1×1 convolution
    (one linear map per pixel, shared over positions) at the feature's ``h × w``, fitted by ridge
    (:meth:`fit`). Closed form on the auxiliary set, then held fixed. The decoder starts from
    it (its output is a learned residual on top, upsampled to the image), so a vector that is any
    invertible linear map of a small image, or a feature that is the image itself, is laid out correctly
    from the first step.
    """

    def __init__(self, feature_shape: tuple[int, ...], channels: int, side: int):
        super().__init__()
        self.vector = not _is_spatial(feature_shape)
        self.lam_factor: torch.Tensor | None = None    # vectors: λ per output chosen by fit_vector
        self.smooth_side: int | None = None            # vectors: side the start is smoothed to (fit_vector)
        self.seed_side: int | None = None              # vectors: the learned seed's side (set by Decoder)
        if self.vector:
            self.shape = (channels, side, side)
            self.map: nn.Module = nn.Linear(math.prod(feature_shape), channels * side * side)
        else:
            self.shape = (channels, *feature_shape[1:])
            self.map = nn.Conv2d(feature_shape[0], channels, 1)
        nn.init.zeros_(self.map.weight)
        nn.init.zeros_(self.map.bias)
        self.map.requires_grad_(False)   # a fixed closed-form fit: Adam's first large steps would undo it

    def _pairs(self, features: torch.Tensor, images: torch.Tensor, max_rows: int) -> tuple[torch.Tensor, torch.Tensor]:
        target = nn.functional.interpolate(images.float(), size=self.shape[1:], mode="area")
        if self.vector:
            return features.flatten(1).double(), target.flatten(1).double()
        x = features.float().permute(0, 2, 3, 1).reshape(-1, features.shape[1])
        y = target.permute(0, 2, 3, 1).reshape(-1, self.shape[0])
        if len(x) > max_rows:
            keep = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:max_rows]
            x, y = x[keep], y[keep]
        return x.double(), y.double()

    @staticmethod
    def _ridge(x: torch.Tensor, y: torch.Tensor, ridge: float,
               new: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor] | torch.Tensor:
        """(W, b) of the ridge regression y ≈ x W + b, in its dual (n × n Gram) form when there are more
        columns than rows; with ``new`` rows, their predictions ``new W + b`` instead (in the dual form
        without building the d × out matrix W: ``(new − x̄) xᵀ α``)."""
        x_mean, y_mean = x.mean(0), y.mean(0)
        x, y = x - x_mean, y - y_mean
        n, d = x.shape
        lam = ridge * max(float((x * x).sum()) / max(d, 1), 1e-12)
        if d <= n:
            w = torch.linalg.solve(x.T @ x + lam * torch.eye(d, dtype=x.dtype), x.T @ y)
            return (w, y_mean - x_mean @ w) if new is None else (new - x_mean) @ w + y_mean
        alpha = torch.linalg.solve(x @ x.T + lam * torch.eye(n, dtype=x.dtype), y)
        if new is not None:
            return ((new - x_mean) @ x.T) @ alpha + y_mean
        w = x.T @ alpha
        return w, y_mean - x_mean @ w

    @torch.no_grad()
    def fit(self, features: torch.Tensor, images: torch.Tensor, ridge: float = 1e-2, max_rows: int = 65536) -> None:
        """Closed-form ridge fit of standardised ``features`` to ``images`` resized to :attr:`shape`."""
        w, b = self._ridge(*self._pairs(features, images, max_rows), ridge)
        self.map.weight.copy_(w.T.reshape(self.map.weight.shape).float())
        self.map.bias.copy_(b.float())

    @torch.no_grad()
    def fit_vector(self, features: torch.Tensor, images: torch.Tensor, folds: int, seed: int,
                   out_of_fold: bool = True, smoothed: bool = True) -> torch.Tensor | None:
        """Vector features: full-width ridge fit with λ chosen per output (pixel × colour component) by
        ``folds``-fold CV (:func:`inversion.ridge.fit_per_output`); returns each auxiliary pair's
        out-of-fold linear reconstruction (N × shape) when ``out_of_fold``, else ``None``; smoothed to the
        chosen :attr:`smooth_side` unless ``smoothed`` is false (then :meth:`smoothed_to` does it).

        Fitted in-sample, a map with more inputs than pairs (VGG's 4096-wide fc6 on 1,792 pairs) nearly
        interpolates its own training images, so the decoder trained on top learns to trust a base that
        is far worse on any other image: held-out SSIM fell from 0.444 at step 50 to 0.427 at the end while
        training batches reached 0.70 (vgg13 fc6, BENCHMARKS.md). Out-of-fold bases are as good on the
        training pairs as the full fit is on new images (slightly worse: each fold fits on (folds−1)/folds).
        """
        if not self.vector:
            raise ValueError("fit_vector is for vector features; spatial features use fit()")
        x, y = self._pairs(features, images, max_rows=len(features))
        target = y.view(-1, *self.shape)
        basis = ridge.colour_basis(target)                          # C × C, columns = components
        rotated = torch.einsum("nchw,cd->ndhw", target, basis).flatten(1)
        fit = ridge.fit_per_output(x, rotated, folds, seed, out_of_fold)

        def back(t: torch.Tensor) -> torch.Tensor:                 # colour components → RGB
            return torch.einsum("ndhw,cd->nchw", t.reshape(len(t), *self.shape), basis.to(t.dtype))

        fit.weight = fit.weight.float()                             # frees the float64 d × out copy
        self.map.weight.copy_(back(fit.weight).flatten(1).T)        # out × d, RGB order
        self.map.bias.copy_(back(fit.bias[None]).flatten().float())
        self.lam_factor = fit.lam_factor
        if fit.out_of_fold is None:
            return None
        bases = back(fit.out_of_fold).float()
        self.smooth_side = self._smoothing_side(bases, target.float())
        return self._smooth(bases) if smoothed else bases

    def smoothed_to(self, start: torch.Tensor, side: int | None) -> torch.Tensor:
        """``start`` smoothed to ``side`` (``None``: unchanged), as :meth:`forward` does with :attr:`smooth_side`."""
        kept, self.smooth_side = self.smooth_side, side
        try:
            return self._smooth(start)
        finally:
            self.smooth_side = kept

    def coarse_side(self) -> int | None:
        """The seed's side when the start is smoothed to a finer one: the other candidate start of
        :func:`inversion.attack.train_decoder` (the side the linear start had before 2026-12-02), else ``None``."""
        side = self.shape[-1] if self.smooth_side is None else min(self.smooth_side, self.shape[-1])
        if not self.vector or self.seed_side is None or side <= self.seed_side:
            return None
        return self.seed_side

    def _smooth(self, start: torch.Tensor) -> torch.Tensor:
        """The start area-averaged to :attr:`smooth_side` and brought back (bilinear) to its own side."""
        side = self.shape[-1]
        if self.smooth_side is None or self.smooth_side >= side:
            return start
        return _resize(_resize(start, self.smooth_side), side)

    @torch.no_grad()
    def _smoothing_side(self, bases: torch.Tensor, target: torch.Tensor) -> int:
        """Side (the start's own, halved down to ``VECTOR_MIN_SIDE``) whose smoothed out-of-fold starts score
        the highest SSIM against their images. A weak feature's per-pixel start is noisy at full resolution
        (resnet50's random-init 2048-vector: held-out SSIM 0.433 after 50 steps from it against 0.470 from
        the 8×8 start before 2026-12-02); an informative one keeps its detail."""
        side, best, best_score = self.shape[-1], self.shape[-1], -math.inf
        candidate = side
        while True:
            self.smooth_side = candidate
            score = float(ssim_torch(self._smooth(bases).clamp(BASE_CLAMP, 1 - BASE_CLAMP), target))
            if score > best_score:
                best, best_score = candidate, score
            if candidate // 2 < min(VECTOR_MIN_SIDE, side):
                return best
            candidate //= 2

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self._smooth(self.map(f).view(-1, *self.shape)) if self.vector else self.map(f)


def _is_spatial(shape: tuple[int, ...]) -> bool:
    return len(shape) == 3 and shape[1] * shape[2] > 1


def vector_base_side(in_dim: int, channels: int, image_size: int, seed_side: int) -> int:
    """Side of a vector's linear start: the image's own while ``in_dim × channels × side²`` weights stay
    under ``BASE_WEIGHT_LIMIT`` (every bundled vector at 64 px), else the largest side that does, at
    least the seed's."""
    fits = math.isqrt(max(BASE_WEIGHT_LIMIT // max(in_dim * channels, 1), 1))
    return max(seed_side, min(image_size, fits))


def _resize(x: torch.Tensor, side: int) -> torch.Tensor:
    """``x`` at ``side × side``: area averaging down, bilinear up."""
    if x.shape[-1] == side and x.shape[-2] == side:
        return x
    if side < x.shape[-1]:
        return nn.functional.adaptive_avg_pool2d(x, side)
    return nn.functional.interpolate(x, size=(side, side), mode="bilinear", align_corners=False)


class Decoder(nn.Module):
    """g_z: feature of shape ``feature_shape`` (batch excluded) → image ``channels × H × W`` in [0, 1]."""

    def __init__(self, feature_shape: tuple[int, ...], image_size: int, standardizer: FeatureStandardizer,
                 shape: DecoderShape = DecoderShape(), channels: int = 3, fit_pairs: int | None = None):
        """``fit_pairs``: auxiliary pairs the decoder is fitted on; a vector wider than that (data-limited)
        enters its learned map at rank ``shape.vector_rank`` (its full-width linear start is unchanged)."""
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
            self.linear_image = LinearImageSeed(self.feature_shape, channels, side)
            extra = 0
        else:
            in_dim = math.prod(self.feature_shape)
            side = min(image_size, max(VECTOR_MIN_SIDE, image_size // VECTOR_SEED_FRACTION))
            stages = max(0, round(math.log2(image_size / side)))
            width = min(shape.max_width, shape.base_width * 2 ** stages)
            seed_channels = max(shape.base_width, min(width, VECTOR_SEED_ELEMENTS // side ** 2))
            out_dim = seed_channels * side * side
            data_limited = fit_pairs is not None and in_dim > fit_pairs
            if in_dim > shape.vector_rank and (data_limited or in_dim * out_dim > FULL_LINEAR_LIMIT):
                linear = nn.Sequential(nn.Linear(in_dim, shape.vector_rank, bias=False),
                                       nn.Linear(shape.vector_rank, out_dim))
            else:
                linear = nn.Linear(in_dim, out_dim)
            last = linear[-1] if isinstance(linear, nn.Sequential) else linear
            nn.init.zeros_(last.weight)   # starts from the linear image seed alone, then learns what it misses
            self.seed = nn.Sequential(nn.Flatten(), linear, nn.Unflatten(1, (seed_channels, side, side)),
                                      nn.LeakyReLU(0.2))
            self.linear_image = LinearImageSeed(self.feature_shape, channels,
                                                vector_base_side(in_dim, channels, image_size, side))
            self.linear_image.seed_side = side
            self.stem = nn.Sequential(nn.Conv2d(seed_channels + channels, width, 1), nn.LeakyReLU(0.2),
                                      _block(width, width))
            extra = channels          # a vector's linear start joins every upsampling stage
        self.width = width
        self.stage_sides = [side * 2 ** (k + 1) for k in range(stages)]
        self.stages = nn.ModuleList()
        for _ in range(stages):
            out = max(shape.base_width, width // 2)
            self.stages.append(_block(width + extra, out))
            width = out
        self.to_image = nn.Conv2d(width, channels, 3, padding=1)
        nn.init.zeros_(self.to_image.weight)   # output = the linear reconstruction at the first step
        nn.init.zeros_(self.to_image.bias)

    def parameter_groups(self, lr: float) -> list[dict]:
        """Adam groups: a vector's learned seed map at ``SEED_LR_FACTOR`` × lr (each of its many weights
        moves by ≈ lr per Adam step, which at the full rate floods the seed with noise), the rest at lr."""
        seed = [p for p in (self.seed.parameters() if self.seed is not None else []) if p.requires_grad]
        ids = {id(p) for p in seed}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in ids]
        groups = [{"params": rest, "lr": lr}]
        if seed:
            groups.append({"params": seed, "lr": lr * SEED_LR_FACTOR})
        return groups

    def _to_size(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            x = nn.functional.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear",
                                          align_corners=False)
        return x

    def forward(self, feature: torch.Tensor, base: torch.Tensor | None = None) -> torch.Tensor:
        """``sigmoid(residual + logit(linear reconstruction))``: the learned part refines the linear one.
        ``base`` replaces the linear reconstruction (training on out-of-fold bases,
        :meth:`LinearImageSeed.fit_vector`).
        A vector's base also enters the stem and each upsampling stage, resized to its side."""
        x = self.standardizer(feature)
        if base is None:
            base = self.linear_image(x)
        if self.seed is not None:
            seed = self.seed(x)
            x = torch.cat([seed, _resize(base.to(seed.dtype), seed.shape[-1])], dim=1)
        x = self.stem(x)
        for side, stage in zip(self.stage_sides, self.stages):
            x = nn.functional.interpolate(x, scale_factor=2, mode="nearest")
            if self.seed is not None:
                x = torch.cat([x, _resize(base.to(x.dtype), side)], dim=1)
            x = stage(x)
        x = self._to_size(x)
        base = self._to_size(base.float()).clamp(BASE_CLAMP, 1 - BASE_CLAMP)
        return torch.sigmoid(self.to_image(x) + torch.logit(base))
