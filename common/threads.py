"""torch CPU threads: at most the CPUs this process may run on.

``torch.set_num_threads(100000)`` is accepted by torch, and the first allocation then fails with "can't
allocate memory" (each OpenMP thread reserves a stack) beside a tqdm warning that it cannot start a
thread: nothing that names ``--threads``. More threads than CPUs only slow these small tensors down and
make a latency table record a thread count the machine never ran, so the commands refuse them.
"""

from __future__ import annotations

import os

import torch

from common.errors import UserInputError


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one, else ``os.cpu_count()``)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except (AttributeError, OSError):
        return max(os.cpu_count() or 1, 1)


def check_threads(threads: int, option: str = "--threads") -> int:
    """``threads`` if it lies in 1..:func:`available_cpus`, else a one-line :class:`UserInputError`."""
    cpus = available_cpus()
    if not 1 <= threads <= cpus:
        raise UserInputError(f"{option} {threads}: this machine runs this process on {cpus} CPU"
                             f"{'s' if cpus != 1 else ''}; give 1..{cpus}")
    return threads


def set_threads(threads: int, option: str = "--threads") -> None:
    """Check ``threads`` (:func:`check_threads`), then ``torch.set_num_threads``."""
    torch.set_num_threads(check_threads(threads, option))
