"""Seeds side by side in one process: the run's own global RNG stream, and the folder of a group.

A group of R runs (``cli.py train --seeds 0-7``) is R :class:`~optimizer.algos.hc_mappo_l.Trainer` objects, each
with its own env copies, networks, optimisers, normalisers, λ (and PID state) and generators; the one thing
they would otherwise share is torch's global RNG (network initialisation and every sampled action), so each
run keeps its own copy of that state and swaps it in while it works (:class:`RunRNG`). A run in a group
therefore draws exactly the numbers it draws alone: the group of one *is* the single run.

Folder: ``OUT/group.json`` (algorithm, seeds, run folders) and one ``OUT/seed-S/`` per seed holding the files
of a single run, so ``evaluate``, ``--resume`` and the results scripts read each seed as they read any run.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Iterator

import torch

from common.errors import UserInputError
from common.files import atomic_open
from common.seeds import parse_seed_list

GROUP_FILE = "group.json"
#: Most runs one ``--seeds`` may ask for: each run holds its own env copies and networks (≈ 30 MB at the
#: default), and 64 is what ``benchmarks/device_check.sh`` measures on a GPU.
MAX_GROUP = 64


class RunRNG:
    """One run's copy of torch's global RNG state (CPU, and CUDA where the run trains there)."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device if device.type == "cuda" else None
        self.state = torch.get_rng_state()
        self.cuda_state = torch.cuda.get_rng_state(self.cuda) if self.cuda is not None else None

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """Swap this run's state in, and keep what the run drew when it hands the RNG back."""
        outer = torch.get_rng_state()
        outer_cuda = torch.cuda.get_rng_state(self.cuda) if self.cuda is not None else None
        torch.set_rng_state(self.state)
        if self.cuda is not None:
            torch.cuda.set_rng_state(self.cuda_state, self.cuda)
        try:
            yield
        finally:
            self.state = torch.get_rng_state()
            torch.set_rng_state(outer)
            if self.cuda is not None:
                self.cuda_state = torch.cuda.get_rng_state(self.cuda)
                torch.cuda.set_rng_state(outer_cuda, self.cuda)


def parse_seeds(text: str, high: int) -> list[int]:
    """``"0-7"`` → 0…7, ``"0,3,5"`` → [0, 3, 5], ``"0-2,9"`` → [0, 1, 2, 9]; at most :data:`MAX_GROUP`."""
    return parse_seed_list(text, high, MAX_GROUP)


def seed_dir(out: str | Path, seed: int) -> Path:
    return Path(out) / f"seed-{seed}"


def write_group(out: str | Path, algo: str, seeds: list[int]) -> None:
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_open(folder / GROUP_FILE) as fh:
        json.dump({"algo": algo, "seeds": seeds, "runs": [seed_dir("", s).name for s in seeds]}, fh, indent=1)


def group_runs(out: str | Path) -> list[tuple[int, Path]] | None:
    """(seed, run folder) of every run of the group in ``out``; ``None`` when ``out`` holds no group."""
    path = Path(out) / GROUP_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        return [(int(seed), Path(out) / name) for seed, name in zip(record["seeds"], record["runs"])]
    except (ValueError, KeyError, TypeError):
        raise UserInputError(f"{path}: not a training group record (train with --seeds)") from None
