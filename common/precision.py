"""Matmul precision shared by every command that trains or runs networks: fp32, or bf16 autocast.

bf16 autocast keeps weights, gradients and optimiser state in float32 and runs matrix products in
bfloat16; on CPUs with AVX512-BF16 or AMX (and on CUDA) that is 1.3–4× faster (BENCHMARKS.md).
"""

from __future__ import annotations

from contextlib import nullcontext

import torch

from common.errors import UserInputError


PRECISIONS = ("auto", "bf16", "fp32")


def use_bf16(device: torch.device, precision: str) -> bool:
    """``auto``: bf16 autocast where the hardware has it (CUDA, or a CPU with AVX512-BF16/AMX)."""
    if precision not in PRECISIONS:
        raise UserInputError(f"--precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision == "bf16"
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def autocast(device: torch.device, bf16: bool):
    """bf16 autocast on ``device`` or nothing."""
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()
