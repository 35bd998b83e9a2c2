"""Labelled images for pricing a defense: the task (accuracy) and the attacker's images come from one set.

* ``fashion-mnist``: the 60,000 train images (the model owner's fine-tuning data, and the pool the
  attacker's auxiliary images are drawn from, as for ``leakage``) and the 10,000 t10k images (accuracy
  on all of them; the attacker's victims are a seeded subset), gray, resized to the model's input size.
* ``gratings``: a plumbing-check task that needs no download: class k of 10 is a sinusoidal grating at
  angle k·18°, random frequency (2–4 cycles) and phase, plus Gaussian noise of s.d. 0.1, gray in [0, 1].
  A LeNet learns it to ≈ 100 % in a few hundred steps, so accuracy and its drop are meaningful.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from common.errors import UserInputError
from inversion.data import FASHION_MNIST_DIR, fashion_mnist_arrays, gray_tensor

LABELLED_DATASETS = ("fashion-mnist", "gratings")
GRATING_CLASSES = 10
GRATING_TRAIN, GRATING_TEST = 4096, 1024


@dataclass
class LabelledSet:
    """Images in [0, 1] (N × C × S × S) with integer labels; train = owner's data and attacker's pool."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    description: dict[str, Any] = field(default_factory=dict)

    def attacker_images(self, n_train: int, n_test: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The attacker's auxiliary images (from train) and the victims it attacks (from test), seeded."""
        rng = np.random.default_rng(seed)
        pick = lambda n, k: torch.from_numpy(np.sort(rng.choice(n, size=min(k, n), replace=False)))  # noqa: E731
        return self.train_x[pick(len(self.train_x), n_train)], self.test_x[pick(len(self.test_x), n_test)]


def gratings(image_size: int, seed: int = 0, n_train: int = GRATING_TRAIN, n_test: int = GRATING_TEST) -> LabelledSet:
    """The ``gratings`` task (module docstring); train and test drawn from disjoint seed streams."""
    def draw(n: int, stream: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([seed, stream])
        labels = rng.integers(0, GRATING_CLASSES, n)
        theta = labels * math.pi / GRATING_CLASSES
        freq = rng.uniform(2, 4, n) * 2 * math.pi / image_size
        phase = rng.uniform(0, 2 * math.pi, n)
        yy, xx = np.mgrid[0:image_size, 0:image_size].astype(np.float64)
        proj = np.cos(theta)[:, None, None] * xx + np.sin(theta)[:, None, None] * yy
        images = 0.5 + 0.4 * np.sin(freq[:, None, None] * proj + phase[:, None, None])
        images += rng.normal(0, 0.1, images.shape)
        x = torch.from_numpy(np.clip(images, 0, 1).astype(np.float32)).unsqueeze(1)
        return x, torch.from_numpy(labels.astype(np.int64))

    train_x, train_y = draw(n_train, 1)
    test_x, test_y = draw(n_test, 2)
    return LabelledSet(train_x, train_y, test_x, test_y, {
        "name": "gratings", "classes": GRATING_CLASSES, "n_train": n_train, "n_test": n_test,
        "image_size": image_size, "definition": "sinusoidal gratings at k·18°, 2–4 cycles, noise s.d. 0.1"})


def fashion_mnist(image_size: int) -> LabelledSet:
    tx, ty = fashion_mnist_arrays("train")
    vx, vy = fashion_mnist_arrays("t10k")
    return LabelledSet(gray_tensor(tx, image_size), torch.from_numpy(ty.astype(np.int64)),
                       gray_tensor(vx, image_size), torch.from_numpy(vy.astype(np.int64)), {
                           "name": "fashion-mnist", "source": f"{FASHION_MNIST_DIR} (Debian dataset-fashion-mnist)",
                           "n_train": len(tx), "n_test": len(vx), "image_size": image_size,
                           "split": "train split: fine-tuning and the attacker's auxiliary pool; "
                                    "t10k: accuracy (all) and the attacked victims (a seeded subset)"})


def load_labelled(name: str, image_size: int, seed: int = 0) -> LabelledSet:
    if name == "fashion-mnist":
        return fashion_mnist(image_size)
    if name == "gratings":
        return gratings(image_size, seed)
    raise UserInputError(f"--dataset {name!r}: expected one of {', '.join(LABELLED_DATASETS)} "
                         "(a defense is priced in accuracy, so its data needs labels)")
