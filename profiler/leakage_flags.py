"""Marks on a measured leakage value that say how far to trust it, shared by every printer and figure.

* ``†`` *decoder still improving*: the held-out auxiliary SSIM rose by more than
  ``CONVERGENCE_GAIN_LIMIT`` over the second half of decoder training (``convergence.gain_last_half``),
  so a longer budget would likely measure more leakage;
* ``≥`` *data-limited, a lower bound*: the split sends a vector wider than the auxiliary pairs the
  decoder was fitted on (``feature_width > n_fit``), so even its linear inverse is not identifiable
  from them; a larger budget's auxiliary set can raise the number.

Both read fields of the profile's ``leakage`` object (written by :mod:`inversion.store`); an entry
without them (measured before 2026-12-02) carries no ``≥`` mark.
"""

from __future__ import annotations

from typing import Any, Iterable

CONVERGENCE_GAIN_LIMIT = 0.02     # README: the quick budget lands within 0.02 of a 4× longer run (resnet18)
STILL_IMPROVING_MARK = "†"
LOWER_BOUND_MARK = "≥"


def gain_last_half(leak: dict[str, Any] | None) -> float | None:
    value = ((leak or {}).get("convergence") or {}).get("gain_last_half")
    return None if value is None else float(value)


def still_improving(leak: dict[str, Any] | None) -> bool:
    """The decoder gained more than ``CONVERGENCE_GAIN_LIMIT`` held-out SSIM over its last half."""
    gain = gain_last_half(leak)
    return gain is not None and gain > CONVERGENCE_GAIN_LIMIT


def data_limited(leak: dict[str, Any] | None) -> bool:
    """The feature is wider than the auxiliary pairs the decoder was fitted on: the value is a lower bound."""
    return bool((leak or {}).get("data_limited"))


def ssim_cell(leak: dict[str, Any] | None, digits: int = 3, missing: str = "-") -> str:
    """``0.483``, ``≥0.483`` (lower bound), ``0.512†`` (still improving)."""
    if not leak:
        return missing
    return (f"{LOWER_BOUND_MARK if data_limited(leak) else ''}{leak['ssim']:.{digits}f}"
            f"{STILL_IMPROVING_MARK if still_improving(leak) else ''}")


def footnotes(leaks: Iterable[tuple[int, dict[str, Any] | None]]) -> list[str]:
    """One line per mark used among ``(split, leakage)`` pairs, naming the splits and by how much."""
    pairs = [(z, leak) for z, leak in leaks if leak]
    improving = [f"z={z} {gain_last_half(leak):+.3f}" for z, leak in pairs if still_improving(leak)]
    limited = [f"z={z} ({leak.get('feature_width', '?')} > {leak.get('n_fit', '?')})"
               for z, leak in pairs if data_limited(leak)]
    lines = []
    if improving:
        lines.append(f"{STILL_IMPROVING_MARK} decoder still improving: held-out SSIM gain over the last half of "
                     f"training above {CONVERGENCE_GAIN_LIMIT} ({', '.join(improving)}); a longer budget "
                     "would likely measure more")
    if limited:
        lines.append(f"{LOWER_BOUND_MARK} data-limited, a lower bound: the vector is wider than the auxiliary "
                     f"pairs the decoder was fitted on ({', '.join(limited)}); a larger budget's auxiliary "
                     "set can raise it")
    return lines
