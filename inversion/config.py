"""Settings of one leakage run, and the budget presets (quick / standard / thorough).

A budget fixes the number of auxiliary/held-out images and the decoder's training steps, so a run is
reproducible from its settings and seed (time budgets would not be). ``quick`` is the default; how close
it comes to a 4× longer run is measured in BENCHMARKS.md ("Convergence"), and every run stores each
decoder's held-out convergence curve.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from inversion.attack import TrainConfig
from inversion.identity import VictimIdentity

THREAT_MODEL = ("black-box inverse network: an honest-but-curious server knows the split point, sees the "
                "transmitted feature and holds auxiliary images from the same distribution as the victim's "
                "(never the victim's test images); the victim model is frozen, only the decoder is trained")


@dataclass(frozen=True)
class Budget:
    """Images, decoder training steps and images per step of one preset."""

    name: str
    n_train: int
    n_test: int
    steps: int
    batch_size: int = 64


BUDGETS: dict[str, Budget] = {
    "smoke": Budget("smoke", n_train=64, n_test=16, steps=10, batch_size=32),  # wiring check only
    "quick": Budget("quick", n_train=2048, n_test=256, steps=400),
    "standard": Budget("standard", n_train=4096, n_test=512, steps=1600),
    "thorough": Budget("thorough", n_train=8192, n_test=1024, steps=6400),
}


@dataclass(frozen=True)
class LeakageSettings:
    """Everything that determines a leakage number (a rerun with equal settings may skip finished splits).

    ``victim`` is what was measured (hashes of the weights as loaded and of the model's structure, the
    precision and the device kind, :mod:`inversion.identity`); ``weights`` is only the label the user gave.
    """

    model: str
    weights: str
    data: str                      # "embedded", "cifar10" or a folder path
    image_size: int
    budget: str
    seed: int
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=BUDGETS["quick"].steps,
                                                                   batch_size=BUDGETS["quick"].batch_size))
    n_train: int = BUDGETS["quick"].n_train
    n_test: int = BUDGETS["quick"].n_test
    victim: VictimIdentity | None = None

    @classmethod
    def from_budget(cls, model: str, weights: str, data: str, image_size: int, budget: str, seed: int,
                    loss: str = "mse+ssim", victim: VictimIdentity | None = None) -> "LeakageSettings":
        preset = BUDGETS[budget]
        return cls(model, weights, data, image_size, budget, seed,
                   TrainConfig(steps=preset.steps, batch_size=preset.batch_size, loss=loss),
                   preset.n_train, preset.n_test, victim)

    def with_train(self, **changes: Any) -> "LeakageSettings":
        return replace(self, train=replace(self.train, **changes))

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    def key(self) -> str:
        """Stable hash of the settings, the victim's identity included: equal key ⇔ results may be reused.

        ``sha256(json.dumps(as_json(), sort_keys=True))[:16]``, where ``as_json()`` holds every field
        above and ``victim`` = {weights_sha256, structure_sha256, precision, device_kind}.
        """
        if self.victim is None:
            raise ValueError("settings without the victim's identity have no key (what was measured is unknown)")
        return settings_digest(self.as_json())

    def legacy_key(self) -> str:
        """The key before the victim's identity joined it (labels only; sets measured up to 2026-12-02
        carry it as ``legacy_settings_key``). Never used to reuse results."""
        return settings_digest({k: v for k, v in self.as_json().items() if k != "victim"})


def settings_digest(settings: dict[str, Any]) -> str:
    """The key of a settings dict (``LeakageSettings.as_json()`` form): sha256 of its sorted JSON, 16 hex digits."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
