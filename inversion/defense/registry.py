"""Defenses applied to the feature the device sends, registered the way models are.

A defense is an ``nn.Module`` that sits at the end of the device side of split z: it maps the tensor
that would cross the cut to the one that does. Each has one strength knob (σ, bits, α) and says

* what it sends (:meth:`Defense.sent_bytes`, :meth:`Defense.sent_shape`),
* what it adds to device and server compute (:meth:`Defense.device_macs`, :meth:`Defense.server_macs`;
  a learned bottleneck's 1×1 convolutions, say),
* what it trains (``trains``: ``"none"``; ``"server"``, the server side re-fitted to the defended
  feature; ``"both"``, device and server fine-tuned with :meth:`Defense.penalty` added to the task loss),
* what a white-box attacker who knows it inverts (:meth:`Defense.attacker_view`: the defense without
  its randomness, differentiable).

A user adds one with ``@register_defense("name", strength="σ", strengths=(...))`` on a factory
``(strength, feature_shape) -> Defense`` (docs/extending.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from common.errors import UserInputError

TRAINS = ("none", "server", "both")
FLOAT_BYTES = 4


class Defense(nn.Module):
    """A defense of one strength for one feature shape (batch excluded). Subclasses override ``forward``."""

    trains: str = "none"

    def __init__(self, strength: float, feature_shape: tuple[int, ...]):
        super().__init__()
        self.strength = float(strength)
        self.feature_shape = tuple(int(s) for s in feature_shape)

    def sent_shape(self) -> tuple[int, ...]:
        """Shape of the tensor that crosses the cut (batch excluded)."""
        return self.feature_shape

    def sent_bytes(self) -> int:
        """Bytes one sample sends: float32 elements unless the defense says otherwise."""
        return FLOAT_BYTES * math.prod(self.sent_shape())

    def device_macs(self) -> int:
        """Multiply-adds the defense adds on the device, per sample."""
        return 0

    def server_macs(self) -> int:
        """Multiply-adds the server must add before its first unit, per sample (e.g. a bottleneck's expand)."""
        return 0

    def server_adapter(self) -> nn.Module:
        """What the server runs on the received tensor before its first unit (identity by default)."""
        return nn.Identity()

    def penalty(self, images: torch.Tensor, feature: torch.Tensor) -> torch.Tensor:
        """Added to the task loss while fine-tuning (``trains == "both"``); ``images`` in [0, 1]; 0 by default."""
        return feature.new_zeros(())

    def adversary_step(self, images: torch.Tensor, feature: torch.Tensor) -> None:
        """One update of a simulated attacker on the detached feature, before :meth:`penalty` (none by default)."""

    def attacker_view(self, feature: torch.Tensor) -> torch.Tensor:
        """The defense as a white-box attacker inverts it: deterministic and differentiable."""
        return self(feature)

    def calibrate(self, clean_features: torch.Tensor) -> None:
        """Fit data-dependent constants (a clipping norm) on clean auxiliary features; nothing by default."""


DefenseFactory = Callable[[float, tuple[int, ...]], Defense]


@dataclass(frozen=True)
class DefenseSpec:
    """One registered defense: its factory, the name of its knob, default strengths and what it trains."""

    name: str
    factory: DefenseFactory
    strength: str
    strengths: tuple[float, ...]
    trains: str
    description: str
    stronger: str          # "higher" or "lower": which way of the knob protects more

    def build(self, strength: float, feature_shape: tuple[int, ...]) -> Defense:
        defense = self.factory(strength, feature_shape)
        if not isinstance(defense, Defense):
            raise TypeError(f"defense {self.name!r}: factory returned {type(defense).__name__}, not a Defense")
        defense.trains = self.trains          # the registration says what fine-tuning trains
        return defense


class DefenseRegistry:
    """Name → :class:`DefenseSpec`; registering a name twice is an error (as for models)."""

    def __init__(self) -> None:
        self._specs: dict[str, DefenseSpec] = {}

    def register(self, name: str, strength: str, strengths: tuple[float, ...], trains: str = "none",
                 stronger: str = "higher", description: str = "") -> Callable[[DefenseFactory], DefenseFactory]:
        """Decorator: ``@register_defense("noise", strength="sigma", strengths=(0.1, 0.5, 1, 4))``."""
        key = name.lower()
        if trains not in TRAINS:
            raise ValueError(f"defense {name!r}: trains={trains!r} not in {TRAINS}")
        if stronger not in ("higher", "lower"):
            raise ValueError(f"defense {name!r}: stronger={stronger!r} is neither 'higher' nor 'lower'")
        if not strengths:
            raise ValueError(f"defense {name!r}: give at least one default strength")

        def decorate(factory: DefenseFactory) -> DefenseFactory:
            if key in self._specs:
                raise ValueError(f"defense {key!r} is already registered")
            doc = (factory.__doc__ or "").strip().splitlines()
            self._specs[key] = DefenseSpec(key, factory, strength, tuple(float(s) for s in strengths), trains,
                                           description or (doc[0] if doc else ""), stronger)
            return factory

        return decorate

    def names(self) -> list[str]:
        return list(self._specs)

    def get(self, name: str) -> DefenseSpec:
        try:
            return self._specs[name.lower()]
        except KeyError:
            raise UserInputError(f"unknown defense {name!r}; registered: {', '.join(self.names())}") from None


DEFENSES = DefenseRegistry()
register_defense = DEFENSES.register


def parse_strengths(text: str | None, spec: DefenseSpec) -> tuple[float, ...]:
    """``"8,4,2,1"`` → ``(8.0, 4.0, 2.0, 1.0)``; ``None`` → the defense's defaults. Empty items, repeats and
    non-numbers are refused (one line)."""
    if text is None:
        return spec.strengths
    parts = [p.strip() for p in text.split(",")]
    if not text.strip() or "" in parts:
        raise UserInputError(f"--strengths {text!r}: expected comma-separated values of {spec.name}'s "
                             f"{spec.strength}, e.g. {','.join(f'{s:g}' for s in spec.strengths)}")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise UserInputError(f"--strengths {text!r}: not numbers") from None
    if any(not math.isfinite(v) or v < 0 for v in values):
        raise UserInputError(f"--strengths {text!r}: {spec.strength} must be finite and ≥ 0")
    if len(set(values)) != len(values):
        raise UserInputError(f"--strengths {text!r}: a value is given twice")
    return tuple(values)
