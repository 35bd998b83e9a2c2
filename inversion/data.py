"""Images for the inversion attack: the attacker's auxiliary (train) set and the victim's held-out (test) set.

Three sources, all offline:

* ``embedded`` (default): real photographs that ship inside scikit-image (``skimage.data``). Each source
  image is cut into two disjoint regions along its longer side: the first 75 % gives training crops,
  the last 25 % (after a gap of ``GAP_FRACTION``) gives test crops, so no test pixel is ever seen in
  training. Crops are random squares, the same side range for both regions, resized to the image size.
* ``folder``: a user's folder of images; whole files are split into train and test (by file, seeded).
* ``cifar10``: torchvision's CIFAR-10 (train split = auxiliary, test split = victim), never downloaded here.
* ``fashion-mnist``: Zalando's Fashion-MNIST (gray, 28×28, 10 classes) from Debian's
  ``dataset-fashion-mnist`` package (``benchmarks/get_fashion_mnist.sh``); train split = auxiliary,
  test split = victim, resized to the image size.

Images are float tensors in [0, 1], shape ``N × C × H × W`` with C = 3 (colour) or 1 (gray).
:func:`victim_input` adapts them to the model's channels (gray replicated for an RGB model, colour
turned to luminance for a 1-channel model, in which case the images themselves become gray) and
:class:`Normalizer` maps them to the model's input space (ImageNet mean/std; their average for gray).
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
GRAY_MEAN, GRAY_STD = (0.449,), (0.226,)
LUMA = (0.299, 0.587, 0.114)          # ITU-R BT.601 weights: colour → gray
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")


@dataclass(frozen=True)
class Normalizer:
    """Per-channel affine map between [0, 1] images and the model's input space."""

    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    def _stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (1, -1, 1, 1)
        return (torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(shape),
                torch.tensor(self.std, dtype=x.dtype, device=x.device).view(shape))

    @classmethod
    def for_channels(cls, channels: int) -> "Normalizer":
        return cls() if channels == 3 else cls(GRAY_MEAN * channels, GRAY_STD * channels)

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

    @property
    def channels(self) -> int:
        return int(self.train.shape[1])


def to_gray(images: torch.Tensor) -> torch.Tensor:
    """N × 3 × H × W colour → N × 1 × H × W luminance (BT.601); gray input is returned as is."""
    if images.shape[1] == 1:
        return images
    weights = torch.tensor(LUMA, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images * weights).sum(dim=1, keepdim=True)


def for_model(images: ImageSet, model_channels: int) -> ImageSet:
    """The images the attacker must rebuild: gray when the model or the data is gray, else colour."""
    if model_channels == 1 and images.channels == 3:
        return ImageSet(to_gray(images.train), to_gray(images.test),
                        images.description | {"channels": "luminance (BT.601) of the colour images"})
    if model_channels not in (1, 3) and images.channels != 1:
        raise UserInputError(f"model takes {model_channels}-channel input; leakage is measured on colour "
                             "(3) or gray (1) images, or on gray data replicated to any number of channels")
    return images


def victim_input(images: torch.Tensor, model_channels: int) -> torch.Tensor:
    """[0, 1] images (C = 1 or 3) → the normalised input of a ``model_channels``-channel model."""
    if images.shape[1] == 1 and model_channels != 1:
        images = images.expand(-1, model_channels, -1, -1)
    elif images.shape[1] == 3 and model_channels == 1:
        images = to_gray(images)
    return Normalizer.for_channels(model_channels).normalize(images)


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


def _read_idx(path: Path) -> np.ndarray:
    """An IDX file (the MNIST format, gzip-compressed) as a numpy array."""
    import gzip

    with gzip.open(path, "rb") as fh:
        raw = fh.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def fashion_mnist_arrays(split: str, root: Path = FASHION_MNIST_DIR) -> tuple[np.ndarray, np.ndarray]:
    """(images N × 28 × 28 uint8, labels N) of the ``train`` or ``t10k`` split."""
    images, labels = root / f"{split}-images-idx3-ubyte.gz", root / f"{split}-labels-idx1-ubyte.gz"
    if not images.is_file() or not labels.is_file():
        raise UserInputError(f"--dataset fashion-mnist: not found under {root}/; install it with "
                             "benchmarks/get_fashion_mnist.sh (Debian package dataset-fashion-mnist)")
    return _read_idx(images), _read_idx(labels)


def gray_tensor(images: np.ndarray, image_size: int) -> torch.Tensor:
    """N × h × w uint8 → N × 1 × S × S float in [0, 1] (antialiased bilinear resize)."""
    t = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    if t.shape[-1] != image_size:
        t = F.interpolate(t, size=(image_size, image_size), mode="bilinear", antialias=True,
                          align_corners=False).clamp(0, 1)
    return t


def fashion_mnist(image_size: int, n_train: int, n_test: int, seed: int) -> ImageSet:
    """Fashion-MNIST: auxiliary images from the train split, victim images from the test split (gray)."""
    rng = np.random.default_rng(seed)
    train, _ = fashion_mnist_arrays("train")
    test, _ = fashion_mnist_arrays("t10k")
    pick = lambda a, k: a[np.sort(rng.choice(len(a), size=min(k, len(a)), replace=False))]  # noqa: E731
    return ImageSet(gray_tensor(pick(train, n_train), image_size), gray_tensor(pick(test, n_test), image_size), {
        "name": "fashion-mnist", "source": str(FASHION_MNIST_DIR) + " (Debian dataset-fashion-mnist)",
        "split": "Fashion-MNIST train split -> train, t10k split -> test (gray, resized from 28 px)",
        "n_train": int(n_train), "n_test": int(n_test), "image_size": image_size,
    })


DATASETS = ("embedded", "cifar10", "fashion-mnist")


def load_images(source: str, image_size: int, n_train: int, n_test: int, seed: int) -> ImageSet:
    """``source`` is one of :data:`DATASETS` or a folder path."""
    loaders: dict[str, Callable[..., ImageSet]] = {"embedded": embedded, "cifar10": cifar10,
                                                   "fashion-mnist": fashion_mnist}
    if source in loaders:
        return loaders[source](image_size, n_train, n_test, seed)
    return folder(source, image_size, n_train, n_test, seed)
