"""The weights a profiled model runs with: seeded random init, a cached torchvision set, or a state_dict file.

Nothing is ever downloaded. A torchvision weights name (``ResNet18_Weights.IMAGENET1K_V1``) is used
only if its file is already in the local torch hub cache (``torch.hub.get_dir()/checkpoints``).
State dicts are read with ``torch.load(weights_only=True)`` (no code runs from the file).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from common.errors import UserInputError


NO_WEIGHTS = "none"
DEFAULT_SEED = 0
_ALLOWED = ("none (seeded random init), a torchvision weights name such as "
            "ResNet18_Weights.IMAGENET1K_V1 (already in the torch hub cache), or a state_dict file")


def _looks_like_torchvision_name(text: str) -> bool:
    head, dot, tail = text.partition(".")
    return bool(dot) and head.endswith("_Weights") and tail.isidentifier() and "/" not in text


def cached_torchvision_file(name: str) -> Path:
    """Path of torchvision weights ``name`` in the local hub cache; error if unknown or not cached."""
    import torchvision

    try:
        entry = torchvision.models.get_weight(name)
    except (ValueError, KeyError, AttributeError):
        raise UserInputError(f"--weights {name!r}: not a torchvision weights name") from None
    file = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(entry.url).path).name
    if not file.is_file():
        raise UserInputError(f"--weights {name!r}: not in the local torch cache ({file}); splitpriv never "
                             "downloads weights: place the file there, or pass a state_dict path")
    return file


def _read_state_dict(file: Path, label: str) -> Mapping[str, torch.Tensor]:
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors, zip errors, refused globals: all "unreadable"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserInputError(f"--weights {label!r}: not a readable torch state_dict file ({first})") from None
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserInputError(f"--weights {label!r}: file holds {type(state).__name__}, "
                             "not a state_dict (a mapping of names to tensors)")
    return state


def _load_into(model: nn.Module, state: Mapping[str, torch.Tensor], label: str, model_name: str) -> None:
    try:
        result = model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        detail = lines[1] if len(lines) > 1 else (lines[0] if lines else "mismatch")
        raise UserInputError(f"--weights {label!r} does not fit model {model_name!r}: {detail[:300]}") from None
    del result


def apply_weights(model: nn.Module, weights: str, model_name: str) -> str:
    """Load ``weights`` into ``model`` in place and return the label recorded in the profile table.

    ``"none"`` keeps the seeded random init (label ``"none"``); a torchvision name must be cached;
    anything else is a path to a state_dict. Errors are :class:`UserInputError` with one clear line.
    """
    text = str(weights).strip()
    if text.lower() in (NO_WEIGHTS, ""):
        return NO_WEIGHTS
    path = Path(text).expanduser()
    if path.is_file():
        _load_into(model, _read_state_dict(path, text), text, model_name)
        return str(path)
    if _looks_like_torchvision_name(text):
        file = cached_torchvision_file(text)
        _load_into(model, _read_state_dict(file, text), text, model_name)
        return text
    raise UserInputError(f"--weights {text!r}: no such file; expected {_ALLOWED}")
