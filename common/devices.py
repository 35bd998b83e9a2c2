"""Which torch device a command runs on: ``auto``, ``cpu`` or ``cuda``."""

from __future__ import annotations

import torch

from common.errors import UserInputError


DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA if available else CPU; ``cuda`` without a GPU is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserInputError("--device cuda: no CUDA GPU is available here (use --device cpu or auto)")
    if name not in DEVICES:
        raise UserInputError(f"--device {name!r}: expected one of {', '.join(DEVICES)}")
    return torch.device(name)
