"""Ridge regression of images on vector features with the ridge strength chosen per output by K-fold CV.

The attacker's linear start for a vector feature (:class:`inversion.decoder.LinearImageSeed`): every
output (one pixel of one colour component) gets the ridge strength λ, from ``FACTORS`` × the mean
squared feature value, whose K-fold cross-validated error is lowest. The targets are first rotated into
their colour principal components (a 3 × 3 eigenbasis of the auxiliary pixels' colours), so a component
the feature fixes (the luminance of a gray feature) keeps a small λ while one it barely predicts
(chroma) is shrunk towards its mean instead of fitted to noise. On a 1024-vector orthogonal mix of a
32×32 luminance (1,792 pairs) one shared λ reached 0.876 SSIM at best (grid 1e-4…3), per-output λ 0.923;
the spatial form's 1×1 ridge map 0.934.

Each fold is solved through an eigendecomposition, of ``XᵀX`` (d × d) when the feature has at most as
many dimensions as the fold has pairs, else of the Gram matrix ``XXᵀ`` (n × n, the dual or kernel form):
every λ of the grid then costs one matrix product, and no d × out matrix is formed for predictions.
The same folds give each pair's out-of-fold prediction (a fit that did not see it), which the decoder
trains on (see ``DecoderShape.base_folds``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

FACTORS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)   # λ / mean squared (centred) feature value
MIN_FOLDS = 2
COLUMN_CHUNK = 2048


@dataclass
class _Fold:
    """One fold's spectral solution: predictions for ridge λ are ``(P / (ev + λ)) @ B + y_mean``."""

    p: torch.Tensor
    ev: torch.Tensor
    b: torch.Tensor
    y_mean: torch.Tensor


def _spectral(x: torch.Tensor, y: torch.Tensor, new: torch.Tensor) -> _Fold:
    """Primal (``XᵀX = V E Vᵀ``: P = new V, B = Vᵀ Xᵀ Y) or dual (``XXᵀ = U E Uᵀ``: P = new Xᵀ U,
    B = Uᵀ Y) form of ridge on centred ``x``, ``y``; ``new`` rows are centred with ``x``'s mean."""
    x_mean, y_mean = x.mean(0), y.mean(0)
    x, y, new = x - x_mean, y - y_mean, new - x_mean
    if x.shape[1] <= x.shape[0]:
        ev, v = torch.linalg.eigh(x.T @ x)
        return _Fold(new @ v, ev.clamp_min(0), v.T @ (x.T @ y), y_mean)
    ev, u = torch.linalg.eigh(x @ x.T)
    return _Fold((new @ x.T) @ u, ev.clamp_min(0), u.T @ y, y_mean)


def _predict(fold: _Fold, lam: torch.Tensor, choice: torch.Tensor) -> torch.Tensor:
    """Predictions with λ = ``lam[choice[j]]`` for output column j."""
    out = torch.empty(len(fold.p), len(choice), dtype=fold.p.dtype)
    for i, value in enumerate(lam):
        cols = choice == i
        if cols.any():
            out[:, cols] = (fold.p / (fold.ev + value)) @ fold.b[:, cols] + fold.y_mean[cols]
    return out


def _folds(n: int, folds: int, seed: int) -> list[torch.Tensor]:
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return list(order.chunk(max(MIN_FOLDS, folds)))


def colour_basis(images: torch.Tensor) -> torch.Tensor:
    """C × C orthonormal eigenbasis (columns) of the pixel colour covariance of ``images`` (N × C × h × w)."""
    pixels = images.permute(0, 2, 3, 1).reshape(-1, images.shape[1]).double()
    if images.shape[1] == 1:
        return torch.ones(1, 1, dtype=torch.float64)
    return torch.linalg.eigh(torch.cov(pixels.T))[1]


@dataclass
class RidgeFit:
    """``y ≈ x W + b`` with one λ per output column; ``out_of_fold`` (N × out) when asked for."""

    weight: torch.Tensor          # d × out
    bias: torch.Tensor            # out
    lam_factor: torch.Tensor      # out: the chosen λ / mean squared feature value
    out_of_fold: torch.Tensor | None


def fit_per_output(x: torch.Tensor, y: torch.Tensor, folds: int, seed: int,
                   want_out_of_fold: bool) -> RidgeFit:
    """Ridge ``y ≈ x W + b`` (float64 in, float64 out), λ per output column chosen by K-fold CV error."""
    n, d = x.shape
    scale = max(float(((x - x.mean(0)) ** 2).sum()) / max(d, 1), 1e-12)
    lam = torch.tensor(FACTORS, dtype=x.dtype) * scale
    held_out = _folds(n, folds, seed)
    errors = torch.zeros(len(lam), y.shape[1], dtype=x.dtype)
    for held in held_out:
        keep = torch.ones(n, dtype=torch.bool)
        keep[held] = False
        fold = _spectral(x[keep], y[keep], x[held])
        for i, value in enumerate(lam):
            errors[i] += (((fold.p / (fold.ev + value)) @ fold.b + fold.y_mean - y[held]) ** 2).sum(0)
    choice = errors.argmin(0)
    oof = None
    if want_out_of_fold:
        oof = torch.empty_like(y)
        for held in held_out:
            keep = torch.ones(n, dtype=torch.bool)
            keep[held] = False
            oof[held] = _predict(_spectral(x[keep], y[keep], x[held]), lam, choice)
    x_mean, y_mean = x.mean(0), y.mean(0)
    xc, yc = x - x_mean, y - y_mean
    weight = torch.empty(d, y.shape[1], dtype=x.dtype)
    if d <= n:     # W = V (E + λ)⁻¹ Vᵀ Xᵀ Y
        ev, v = torch.linalg.eigh(xc.T @ xc)
        left, b = v, v.T @ (xc.T @ yc)
    else:          # W = Xᵀ U (E + λ)⁻¹ Uᵀ Y
        ev, u = torch.linalg.eigh(xc @ xc.T)
        left, b = u, u.T @ yc
    ev = ev.clamp_min(0)
    for i, value in enumerate(lam):
        cols = (choice == i).nonzero().flatten()
        for part in cols.split(COLUMN_CHUNK):          # bounded temporaries for 4096 × 12288 maps
            w = (left / (ev + value)) @ b[:, part]
            weight[:, part] = w if d <= n else xc.T @ w
    return RidgeFit(weight, y_mean - x_mean @ weight, torch.tensor(FACTORS, dtype=x.dtype)[choice], oof)
