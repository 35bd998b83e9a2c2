"""Counter-based random numbers, one independent stream per environment copy, fully vectorised.

A batched environment must equal B single environments under the same seeds without a Python loop
over copies, which rules out one ``torch.Generator`` per copy. Instead every random number is a hash
of (copy seed, episode, purpose, slot, index): ``u = (top 24 bits of lowbias32(key ^ index) + 0.5) / 2^24``
(the largest value clamped to just below 1, see :func:`unit_interval`).
``lowbias32`` is Chris Wellons' 32-bit integer hash (bijective, low avalanche bias). Products are
split in 16-bit halves so every intermediate stays below 2^49 in int64 — no reliance on overflow.
"""

from __future__ import annotations

import torch

_MASK32 = 0xFFFFFFFF
_MUL1 = 0x7FEB352D
_MUL2 = 0x846CA68B
_GOLDEN = 0x9E3779B9


def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    """(x · c) mod 2^32 for 0 <= x < 2^32 in int64, without overflow."""
    lo, hi = c & 0xFFFF, c >> 16
    return (x * lo + (((x * hi) & 0xFFFF) << 16)) & _MASK32


def lowbias32(x: torch.Tensor) -> torch.Tensor:
    """Chris Wellons' lowbias32 integer hash on int64 tensors holding values in [0, 2^32)."""
    x = x ^ (x >> 16)
    x = _mul32(x, _MUL1)
    x = x ^ (x >> 15)
    x = _mul32(x, _MUL2)
    return x ^ (x >> 16)


def mix(key: torch.Tensor, value: int | torch.Tensor) -> torch.Tensor:
    """Fold ``value`` into the 32-bit ``key`` (hash of key + value·golden)."""
    if isinstance(value, int):
        value = (value * _GOLDEN) & _MASK32
    else:
        value = _mul32(value & _MASK32, _GOLDEN)
    return lowbias32((key + value) & _MASK32)


def copy_keys(seeds: torch.Tensor) -> torch.Tensor:
    """32-bit stream keys from per-copy integer seeds (B,) int64 (any non-negative int)."""
    seeds = seeds.to(torch.int64)
    return mix(mix(seeds & _MASK32, 0x5EED), (seeds >> 32) & _MASK32)


def uniform(key: torch.Tensor, n: int) -> torch.Tensor:
    """(B, n) float32 uniforms in (0, 1) from per-copy keys (B,); the same key gives the same row."""
    index = torch.arange(n, dtype=torch.int64, device=key.device)
    bits = lowbias32(key.unsqueeze(1) ^ _mul32(index, _GOLDEN))
    return unit_interval(bits)


# Largest float32 below 1. (2^24 − 1 + 0.5) / 2^24 = 1 − 2^−25 is a tie between 1 − 2^−24 and 1 and
# rounds to 1.0 in float32; ndtri(1) = inf then gave an infinite shadowing loss, a zero channel gain
# and −inf in the observation (about one episode in 170; found when a training run hit NaN).
_BELOW_ONE = 1.0 - 2.0 ** -24


def unit_interval(bits: torch.Tensor) -> torch.Tensor:
    """32-bit hashes (int64 in [0, 2^32)) → float32 strictly inside (0, 1): (top 24 bits + 0.5) / 2^24,
    the top value clamped to the largest float32 below 1."""
    return (((bits >> 8).to(torch.float32) + 0.5) * (1.0 / 16777216.0)).clamp_max(_BELOW_ONE)


def normal(u: torch.Tensor) -> torch.Tensor:
    """Standard normals from uniforms in (0, 1) by the inverse CDF."""
    return torch.special.ndtri(u)
