"""Gray and colour images for 1- and 3-channel victims, and the Fashion-MNIST reader, on images made here."""

import gzip

import numpy as np
import pytest
import torch

from common.errors import UserInputError
from inversion.data import (ImageSet, Normalizer, fashion_mnist_arrays, for_model, gray_tensor, to_gray,
                            victim_input)


def test_gray_data_is_replicated_for_an_rgb_model_and_colour_turned_to_luminance_for_a_gray_one():
    gray = torch.rand(2, 1, 4, 4)
    rgb_input = victim_input(gray, 3)
    assert rgb_input.shape == (2, 3, 4, 4)
    assert torch.allclose(Normalizer().denormalize(rgb_input), gray.expand(-1, 3, -1, -1), atol=1e-6)
    colour = torch.zeros(1, 3, 2, 2)
    colour[:, 1] = 1.0                                      # pure green: luminance 0.587 (BT.601)
    assert torch.allclose(to_gray(colour), torch.full((1, 1, 2, 2), 0.587))
    images = for_model(ImageSet(colour, colour), 1)
    assert images.channels == 1 and torch.allclose(images.test, to_gray(colour))
    assert for_model(ImageSet(gray, gray), 3).channels == 1   # gray data stays gray: the decoder rebuilds gray
    with pytest.raises(UserInputError, match="4-channel"):
        for_model(ImageSet(colour, colour), 4)


def _idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_reader_reads_idx_files(tmp_path):
    images = np.arange(3 * 28 * 28, dtype=np.int64).reshape(3, 28, 28) % 256
    _idx(tmp_path / "t10k-images-idx3-ubyte.gz", images)
    _idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.array([7, 0, 9]))
    x, y = fashion_mnist_arrays("t10k", root=tmp_path)
    assert np.array_equal(x, images) and y.tolist() == [7, 0, 9]
    t = gray_tensor(x, 32)
    assert t.shape == (3, 1, 32, 32) and 0.0 <= float(t.min()) and float(t.max()) <= 1.0
    with pytest.raises(UserInputError, match="get_fashion_mnist.sh"):
        fashion_mnist_arrays("train", root=tmp_path)
