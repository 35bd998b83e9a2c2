"""Images for the inversion attack: the attacker's auxiliary (train) set and the victim's held-out (test) set.

Three sources, all offline:

* ``embedded`` (default): real photographs that ship inside scikit-image (``skimage.data``). Each source
  image is cut into two disjoint regions along its longer side: the first 75 % gives training crops,
  the last 25 % (after a gap of ``GAP_FRACTION``) gives test crops, so no test pixel is ever seen in
  training. Crops are random squares, the same side range for both regions, resized to the image size.
* ``folder``: a user's folder of images; whole files are split into train and test (by file, seeded).
* ``cifar10``: torchvision's CIFAR-10 (train split = auxiliary, test split = victim), never downloaded here.

Images are float tensors in [0, 1], shape ``N × 3 × H × W``; :class:`Normalizer` maps them to the
model's input space (ImageNet mean/std) and back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from common.errors import UserInputError


#: scikit-image sample photographs used by the embedded set (grayscale ones are replicated to RGB).
EMBEDDED_SOURCES: tuple[str, ...] = (
    "astronaut", "chelsea", "coffee", "hubble_deep_field", "immunohistochemistry", "retina", "rocket",
    "stereo_motorcycle", "camera", "brick", "grass", "gravel", "moon", "coins", "clock", "cell",
)
TEST_FRACTION = 0.25   # share of each embedded source's longer side kept for test crops
GAP_FRACTION = 0.02    # empty band between the train and test regions
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Normalizer:
    """Per-channel affine map between [0, 1] images and the model's input space."""

    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    def _stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (1, -1, 1, 1)
        return (torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(shape),
                torch.tensor(self.std, dtype=x.dtype, device=x.device).view(shape))

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        mean, std = self._stats(images)
        return (images - mean) / std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = self._stats(x)
        return x * std + mean


@dataclass
class ImageSet:
    """Auxiliary (train) and held-out (test) images in [0, 1], plus a description for the results file."""

    train: torch.Tensor
    test: torch.Tensor
    description: dict[str, Any] = field(default_factory=dict)

    @property
    def image_size(self) -> int:
        return int(self.train.shape[-1])


def _to_rgb_float(array: np.ndarray) -> np.ndarray:
    """H × W (× 1/3/4) uint8/bool/float → H × W × 3 float32 in [0, 1]."""
    if array.dtype == bool:
        array = array.astype(np.float32)
    elif np.issubdtype(array.dtype, np.integer):
        array = array.astype(np.float32) / float(np.iinfo(array.dtype).max)
    array = np.asarray(array, dtype=np.float32)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    elif array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    elif array.shape[2] == 4:
        array = array[:, :, :3]
    return np.clip(array, 0.0, 1.0)


def _load_embedded(name: str) -> np.ndarray:
    from skimage import data as skdata

    image = getattr(skdata, name)()
    if name == "stereo_motorcycle":
        image = image[0]  # left view; the right view shows the same scene
    return _to_rgb_float(image)


def _resize(crop: np.ndarray, image_size: int) -> torch.Tensor:
    """H × W × 3 array → 3 × S × S tensor (antialiased bilinear)."""
    t = torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1).unsqueeze(0)
    t = F.interpolate(t, size=(image_size, image_size), mode="bilinear", antialias=True, align_corners=False)
    return t.squeeze(0).clamp(0.0, 1.0)


def _regions(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split along the longer side into a train region and a disjoint test region."""
    h, w = image.shape[:2]
    long_side = max(h, w)
    cut = int(round(long_side * (1.0 - TEST_FRACTION)))
    gap = int(round(long_side * GAP_FRACTION))
    if h >= w:
        return image[:cut - gap], image[cut:]
    return image[:, :cut - gap], image[:, cut:]


def _random_crops(region: np.ndarray, count: int, side_range: tuple[int, int], image_size: int,
                  rng: np.random.Generator) -> list[torch.Tensor]:
    h, w = region.shape[:2]
    crops = []
    for _ in range(count):
        side = int(rng.integers(side_range[0], side_range[1] + 1))
        top = int(rng.integers(0, h - side + 1))
        left = int(rng.integers(0, w - side + 1))
        crops.append(_resize(region[top:top + side, left:left + side], image_size))
    return crops


def embedded(image_size: int, n_train: int, n_test: int, seed: int) -> ImageSet:
    """Random crops of scikit-image's bundled photographs, train and test from disjoint regions.

    Crop sides are drawn uniformly from ``[min(S, m), m]`` where ``m`` is the shorter side of the
    source's test region and ``S`` the image size, the same range for train and test, so both sets
    share one scale distribution. Crops smaller than ``S`` are upsampled (only above ~100 px).
    """
    rng = np.random.default_rng(seed)
    sources = [(name, _load_embedded(name)) for name in EMBEDDED_SOURCES]
    per_train = np.full(len(sources), n_train // len(sources))
    per_train[: n_train % len(sources)] += 1
    per_test = np.full(len(sources), n_test // len(sources))
    per_test[: n_test % len(sources)] += 1
    train, test = [], []
    for (name, image), k_train, k_test in zip(sources, per_train, per_test):
        train_region, test_region = _regions(image)
        largest = min(test_region.shape[:2])
        side_range = (min(image_size, largest), largest)
        train += _random_crops(train_region, int(k_train), side_range, image_size, rng)
        test += _random_crops(test_region, int(k_test), side_range, image_size, rng)
    return ImageSet(torch.stack(train), torch.stack(test), {
        "name": "embedded",
        "sources": f"scikit-image {', '.join(EMBEDDED_SOURCES)} (grayscale replicated to RGB)",
        "split": f"disjoint regions: first {1 - TEST_FRACTION:.0%} of each image's longer side -> train crops, "
                 f"last {TEST_FRACTION:.0%} -> test crops",
        "n_train": int(n_train), "n_test": int(n_test), "image_size": image_size,
    })


def _read_image(path: Path) -> np.ndarray:
    from skimage import io

    try:
        return _to_rgb_float(io.imread(str(path)))
    except Exception as exc:  # imageio/PIL raise many types for a broken file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise UserInputError(f"--data {path}: cannot read image ({type(exc).__name__}: {first})") from None


def folder(path: str | Path, image_size: int, n_train: int, n_test: int, seed: int) -> ImageSet:
    """A user's folder of images: files split into train/test (≈ 80/20, seeded), then random square crops.

    Every readable file must be at least ``image_size`` on its shorter side (no upsampling of user data).
    From each file several random crops are taken to reach ``n_train`` / ``n_test``.
    """
    root = Path(path)
    if not root.is_dir():
        raise UserInputError(f"--data {root}: no such folder")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if len(files) < 2:
        raise UserInputError(f"--data {root}: needs at least 2 image files ({', '.join(IMAGE_SUFFIXES)}), "
                             f"found {len(files)}")
    images = []
    for file in files:
        image = _read_image(file)
        if min(image.shape[:2]) < image_size:
            raise UserInputError(f"--data {file}: image is {image.shape[1]}x{image.shape[0]}, smaller than the "
                                 f"input size {image_size}x{image_size}; pass a smaller --image-size or larger images")
        images.append(image)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(images))
    n_test_files = max(1, int(round(0.2 * len(images))))
    test_idx, train_idx = order[:n_test_files], order[n_test_files:]

    def crops(indices: np.ndarray, count: int) -> list[torch.Tensor]:
        out = []
        for j in range(count):
            image = images[int(indices[j % len(indices)])]
            short = min(image.shape[:2])
            out += _random_crops(image, 1, (max(image_size, short // 2), short), image_size, rng)
        return out

    return ImageSet(torch.stack(crops(train_idx, n_train)), torch.stack(crops(test_idx, n_test)), {
        "name": f"folder:{root}", "files": len(files),
        "split": f"by file: {len(train_idx)} files -> train crops, {len(test_idx)} files -> test crops (seeded)",
        "n_train": int(n_train), "n_test": int(n_test), "image_size": image_size,
    })


def cifar10(image_size: int, n_train: int, n_test: int, seed: int, root: str | Path = "data/cifar10") -> ImageSet:
    """CIFAR-10 from ``root`` (torchvision layout); train split = auxiliary, test split = victim."""
    from torchvision.datasets import CIFAR10

    try:
        train_set = CIFAR10(str(root), train=True, download=False)
        test_set = CIFAR10(str(root), train=False, download=False)
    except RuntimeError:
        raise UserInputError(f"--dataset cifar10: not found under {root}/ (nothing is downloaded at run time); "
                             "download it there with torchvision.datasets.CIFAR10(root, download=True) "
                             "or use the embedded set") from None
    rng = np.random.default_rng(seed)

    def take(dataset: Any, count: int) -> torch.Tensor:
        idx = rng.choice(len(dataset.data), size=min(count, len(dataset.data)), replace=False)
        arr = torch.from_numpy(dataset.data[idx]).permute(0, 3, 1, 2).float() / 255.0
        if image_size != arr.shape[-1]:
            arr = F.interpolate(arr, size=(image_size, image_size), mode="bilinear", antialias=True,
                                align_corners=False).clamp(0, 1)
        return arr

    return ImageSet(take(train_set, n_train), take(test_set, n_test), {
        "name": "cifar10", "split": "CIFAR-10 train split -> train, test split -> test",
        "n_train": int(n_train), "n_test": int(n_test), "image_size": image_size,
    })


def load_images(source: str, image_size: int, n_train: int, n_test: int, seed: int) -> ImageSet:
    """``source`` is ``"embedded"``, ``"cifar10"`` or a folder path."""
    loaders: dict[str, Callable[..., ImageSet]] = {"embedded": embedded, "cifar10": cifar10}
    if source in loaders:
        return loaders[source](image_size, n_train, n_test, seed)
    return folder(source, image_size, n_train, n_test, seed)
