"""Snapshot of a batched env's mutable state, so a run resumed mid-episode continues bit for bit.

Everything the env keeps besides its config, catalog and device is tensors and numbers (geometry,
capacities, deployment, caches, period counters, the slot's requests and channel, RNG keys), so a
snapshot is those attributes, cloned.
"""

from __future__ import annotations

import torch

_FIXED = {"cfg", "catalog", "device"}


def env_state(env) -> dict:
    return {k: (v.clone().cpu() if isinstance(v, torch.Tensor) else v) for k, v in vars(env).items()
            if k not in _FIXED and isinstance(v, (torch.Tensor, bool, int, float))}


def load_env_state(env, state: dict) -> None:
    for key, value in state.items():
        setattr(env, key, value.to(env.device) if isinstance(value, torch.Tensor) else value)
