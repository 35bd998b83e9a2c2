"""--weights: none, a cached torchvision name (never downloaded), or a state_dict file."""

from __future__ import annotations

import torch

import pytest

from common.errors import UserInputError
from profiler import lenet
from profiler.zoo import load_model


def _other_lenet7_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(99)
    return lenet.lenet7().state_dict()


def test_state_dict_file_is_loaded_and_labelled(tmp_path):
    state = _other_lenet7_state()
    path = tmp_path / "lenet7.pt"
    torch.save(state, path)
    loaded = load_model("lenet7", weights=str(path))
    assert loaded.weights_label == str(path)
    for key, value in loaded.model.state_dict().items():
        assert torch.equal(value, state[key])


def test_checkpoint_with_state_dict_key_is_accepted(tmp_path):
    path = tmp_path / "ckpt.pt"
    torch.save({"state_dict": _other_lenet7_state(), "epoch": 3}, path)
    assert load_model("lenet7", weights=str(path)).weights_label == str(path)


def test_mismatched_state_dict_is_a_clear_error(tmp_path):
    path = tmp_path / "wrong.pt"
    torch.save(lenet.lenet9().state_dict(), path)
    with pytest.raises(UserInputError, match="does not fit model 'lenet7'"):
        load_model("lenet7", weights=str(path))


def test_unreadable_file_is_a_clear_error(tmp_path):
    path = tmp_path / "garbage.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(UserInputError, match="not a readable torch state_dict"):
        load_model("lenet7", weights=str(path))


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / "module.pt"
    torch.save(lenet.lenet7(), path)  # a whole pickled module, not a state_dict: weights_only refuses it
    with pytest.raises(UserInputError, match="--weights"):
        load_model("lenet7", weights=str(path))


def test_missing_path_names_what_is_allowed(tmp_path):
    with pytest.raises(UserInputError, match="no such file.*torchvision weights name"):
        load_model("lenet7", weights=str(tmp_path / "absent.pt"))


def test_torchvision_name_not_cached_is_an_error_not_a_download(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(UserInputError, match="not in the local torch cache"):
        load_model("resnet18", weights="ResNet18_Weights.IMAGENET1K_V1")
    assert not any(tmp_path.rglob("*.pth"))


def test_unknown_torchvision_name(tmp_path):
    with pytest.raises(UserInputError, match="not a torchvision weights name"):
        load_model("lenet7", weights="ResNet18_Weights.NO_SUCH_SET")


def test_torchvision_name_found_in_cache_is_used(tmp_path, monkeypatch):
    # Stand in for a cached download: a file named as torchvision's URL names it, in <hub>/checkpoints
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    state = _other_lenet7_state()
    torch.save(state, tmp_path / "checkpoints" / "resnet18-f37072fd.pth")
    # the file holds LeNet-7 tensors, so loading it into lenet7 succeeds: it proves the cache is read
    loaded = load_model("lenet7", weights="ResNet18_Weights.IMAGENET1K_V1")
    assert loaded.weights_label == "ResNet18_Weights.IMAGENET1K_V1"
    assert torch.equal(loaded.model.state_dict()["features.0.weight"], state["features.0.weight"])
